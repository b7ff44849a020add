"""Multi-node jobs: how many GPUs per node, and the rendezvous variables each node gets.

Pure: no I/O. A job on N nodes runs one task per node; Fabriek gives every task the
variables the distributed launchers read (torchrun, accelerate, deepspeed), so that one
command line works on any number of nodes:

- `MASTER_ADDR`: the host of node 0, where the launchers meet;
- `MASTER_PORT`: a port chosen from the job's id (`rendezvous_port`), the same on every node;
- `NNODES`: the number of nodes;
- `NODE_RANK`: this node's number, 0 to NNODES - 1;
- `LOCAL_WORLD_SIZE`: processes per node, one per GPU (1 on a node without GPUs);
- `WORLD_SIZE`: processes in the whole job, NNODES x LOCAL_WORLD_SIZE;
- `GPUS_PER_NODE`: the GPUs each node was given;
- `PET_NNODES`, `PET_NODE_RANK`, `PET_MASTER_ADDR`, `PET_MASTER_PORT`, `PET_NPROC_PER_NODE`:
  the same, named as torchrun reads its options' defaults from the environment, so that a
  bare `torchrun train.py` runs on every node with the right flags.

A job on one node gets none of them (torchrun's `--standalone` needs none).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fabriek.domain.errors import InvalidInput

# Below Linux's ephemeral range (32768 and up), so that no outgoing connection on a node has
# taken the port; wide, so that jobs sharing a node rarely draw the same one.
PORT_BASE = 20000
PORT_SPAN = 12000

# torchrun takes each option's default from PET_<OPTION> (torch.distributed.argparse_util).
TORCHRUN = (
    "PET_NNODES",
    "PET_NODE_RANK",
    "PET_MASTER_ADDR",
    "PET_MASTER_PORT",
    "PET_NPROC_PER_NODE",
)
VARIABLES = (
    "MASTER_ADDR",
    "MASTER_PORT",
    "NNODES",
    "NODE_RANK",
    "LOCAL_WORLD_SIZE",
    "WORLD_SIZE",
    "GPUS_PER_NODE",
    *TORCHRUN,
)


def rendezvous_port(job_id: int) -> int:
    """The job's rendezvous port: the same on every node and every retry, and known before
    any node starts (no node has to tell the others)."""
    return PORT_BASE + job_id % PORT_SPAN


def total_gpus(gpus: int | None, gpus_per_node: int | None, nodes: int) -> int | None:
    """The job's GPUs in all, from what a user gave: the total (`gpus`), the count per node
    (`gpus_per_node`), both (which must agree) or neither (None). A multi-node job's GPUs
    must split evenly over its nodes, since every node runs the same task.

    Raises `InvalidInput` naming the numbers where they do not fit.
    """
    if gpus_per_node is not None:
        implied = gpus_per_node * nodes
        if gpus is not None and gpus != implied:
            raise InvalidInput.on(
                "gpus_per_node",
                f"{gpus_per_node} GPUs per node on {nodes} node(s) is {implied} GPUs, "
                f"but the job asks {gpus} in all; give one of the two",
            )
        return implied
    if gpus is not None:
        check_even(gpus, nodes)
    return gpus


def check_even(gpus: int, nodes: int) -> None:
    """Refuse GPUs that do not split evenly over the nodes."""
    if nodes > 1 and gpus % nodes:
        raise InvalidInput.on(
            "gpus",
            f"{gpus} GPUs do not split evenly over {nodes} nodes; every node runs the same "
            f"task: ask for a multiple of {nodes} (or give --gpus-per-node)",
        )


@dataclass(frozen=True)
class Gang:
    """The nodes of one multi-node job, as their launchers see them."""

    nodes: int
    gpus_per_node: int
    master_addr: str
    master_port: int

    @property
    def local_world_size(self) -> int:
        """Processes per node: one per GPU, and one on a node without GPUs."""
        return max(1, self.gpus_per_node)

    @property
    def world_size(self) -> int:
        """Processes in the whole job."""
        return self.nodes * self.local_world_size


def gang_of(job_id: int, nodes: int, gpus: int, master_addr: str) -> Gang:
    """The gang of a job on `nodes` nodes with `gpus` GPUs in all, meeting at `master_addr`."""
    if nodes < 1:
        raise ValueError(f"a job runs on at least one node, not {nodes}")
    if gpus < 0 or gpus % nodes:
        raise ValueError(f"{gpus} GPUs do not split evenly over {nodes} nodes")
    return Gang(nodes, gpus // nodes, master_addr, rendezvous_port(job_id))


def node_environment(gang: Gang, rank: int) -> dict[str, str]:
    """The rendezvous variables of node `rank` (0-based) of `gang`."""
    if not 0 <= rank < gang.nodes:
        raise ValueError(f"node {rank} is not one of the job's {gang.nodes} nodes")
    return {
        "MASTER_ADDR": gang.master_addr,
        "MASTER_PORT": str(gang.master_port),
        "NNODES": str(gang.nodes),
        "NODE_RANK": str(rank),
        "LOCAL_WORLD_SIZE": str(gang.local_world_size),
        "WORLD_SIZE": str(gang.world_size),
        "GPUS_PER_NODE": str(gang.gpus_per_node),
        "PET_NNODES": str(gang.nodes),
        "PET_NODE_RANK": str(rank),
        "PET_MASTER_ADDR": gang.master_addr,
        "PET_MASTER_PORT": str(gang.master_port),
        "PET_NPROC_PER_NODE": str(gang.local_world_size),
    }


def split_gpus(gpus: Sequence[int], nodes: int) -> list[tuple[int, ...]]:
    """`gpus` (one machine's, as the local engine simulates nodes on it) dealt out to
    `nodes` nodes in order: node i gets the i-th run of len(gpus) / nodes."""
    if nodes < 1 or len(gpus) % nodes:
        raise ValueError(f"{len(gpus)} GPUs do not split evenly over {nodes} nodes")
    each = len(gpus) // nodes
    return [tuple(gpus[i * each : (i + 1) * each]) for i in range(nodes)]


def gang_environments(
    gang: Gang, base: Mapping[str, str], gpus: Sequence[int] | None = None
) -> list[dict[str, str]]:
    """Every node's whole environment on one machine: `base`, then its rendezvous variables
    and, where `gpus` are given, its share of them as `CUDA_VISIBLE_DEVICES`."""
    shares = split_gpus(gpus, gang.nodes) if gpus is not None else None
    envs = []
    for rank in range(gang.nodes):
        env = {**base, **node_environment(gang, rank)}
        if shares is not None:
            visible = ",".join(str(g) for g in shares[rank])
            env.update(CUDA_VISIBLE_DEVICES=visible, FABRIEK_GPUS=visible)
        envs.append(env)
    return envs
