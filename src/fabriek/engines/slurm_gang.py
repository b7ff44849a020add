"""Multi-node jobs on Slurm: the batch script's lines that start one task per node.

Pure: no I/O. Slurm allocates a job's nodes together (all or none) and runs its batch script
on the first; for a command on several nodes the script then starts the command once per
node with `srun`, which

- runs one task per node (`--ntasks-per-node=1`) with the job's GPUs of that node;
- labels every line of output with the node's task number (`--label`: `0: ...`);
- ends every task when one fails (`--kill-on-bad-exit=1`), and exits with its code.

The rendezvous variables (`domain.rendezvous`) are worked out in the script: the first
node's name from `scontrol show hostnames`, and each task's `NODE_RANK` from Slurm's
`SLURM_NODEID`. A batch script of the user's own starts its tasks itself; it gets the
variables that are the same on every node (not `NODE_RANK` or `PET_NODE_RANK`, which only
a task can know). A command in an image on several nodes runs its container once per node
the same way (`node_lines`): each node's task starts the site's runtime with the variables.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from fabriek.domain.jobs import JobSpec
from fabriek.domain.rendezvous import gang_of, node_environment

_FIRST_NODE = 'MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"'
# Each task sets its own rank, then becomes the command.
_RANK = 'export NODE_RANK="$SLURM_NODEID" PET_NODE_RANK="$SLURM_NODEID"'
_PER_TASK = f'{_RANK}; exec "$@"'


# Each node's slurmstepd appends to the job's own output files (on storage every node sees)
# rather than sending its output through srun, which drops what is still on its way when it
# ends a step on a node's failure.
_OWN_FILES = (
    'fabriek_out="$(readlink -f /proc/$$/fd/1)"',
    'fabriek_err="$(readlink -f /proc/$$/fd/2)"',
)


def _shared_exports(job_id: int, spec: JobSpec) -> list[str]:
    # GPUs that do not split evenly (refused at submission; Slurm spreads them) count as
    # the even part, so that no node is told of more than it has.
    gang = gang_of(job_id, spec.nodes, spec.gpus - spec.gpus % spec.nodes, "$MASTER_ADDR")
    shared = node_environment(gang, 0)
    # The address is worked out in the script; the rank in each task.
    for per_task in ("NODE_RANK", "PET_NODE_RANK", "MASTER_ADDR", "PET_MASTER_ADDR"):
        del shared[per_task]
    assigned = " ".join(f"{name}={shlex.quote(value)}" for name, value in shared.items())
    return [
        "# Fabriek: the rendezvous of a multi-node job (see docs/workloads.md)",
        _FIRST_NODE,
        f'export MASTER_ADDR PET_MASTER_ADDR="$MASTER_ADDR" {assigned}',
    ]


def script_rendezvous(job_id: int, spec: JobSpec) -> list[str]:
    """Lines for a batch script on several nodes, before the user's own: the variables that
    are the same on every node. None for a job on one node."""
    return _shared_exports(job_id, spec) if spec.nodes > 1 else []


def _srun(spec: JobSpec) -> str:
    """srun with one task per node, each labelled, all ended when one fails, each node's
    output appended to the job's own files."""
    return (
        f"exec srun --nodes={spec.nodes} --ntasks={spec.nodes} --ntasks-per-node=1 "
        "--kill-on-bad-exit=1 --label --unbuffered "
        '--output="$fabriek_out" --error="$fabriek_err" --open-mode=append'
    )


def command_lines(job_id: int, spec: JobSpec, command: str) -> list[str]:
    """The lines that run `command` (shell text): once, on a job of one node; else once per
    node under srun, with the rendezvous variables."""
    if spec.nodes == 1:
        return [f"exec {command}"]
    srun = f"{_srun(spec)} bash -c {shlex.quote(_PER_TASK)} fabriek-node"
    return [*_shared_exports(job_id, spec), *_OWN_FILES, f"{srun} {command}"]


def node_lines(job_id: int, spec: JobSpec, lines: Sequence[str]) -> list[str]:
    """Lines that run the shell `lines` once on every node of a multi-node job under srun,
    each node with its rank (`NODE_RANK`, `PET_NODE_RANK`) and the shared rendezvous
    variables: how a job in an image starts its container on each node, every node making
    its own temporary files (credentials, the script's body) on its own disk."""
    if spec.nodes == 1:
        return list(lines)
    program = "\n".join([_RANK, *lines])
    srun = f"{_srun(spec)} bash -c {shlex.quote(program)} fabriek-node"
    return [*_shared_exports(job_id, spec), *_OWN_FILES, srun]
