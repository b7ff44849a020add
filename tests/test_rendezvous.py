"""The rendezvous rules of multi-node jobs: pure, so checked over many cases."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fabriek.domain.errors import InvalidInput
from fabriek.domain.rendezvous import (
    PORT_BASE,
    PORT_SPAN,
    VARIABLES,
    gang_environments,
    gang_of,
    node_environment,
    rendezvous_port,
    split_gpus,
    total_gpus,
)

job_ids = st.integers(min_value=0, max_value=10**15)
node_counts = st.integers(min_value=1, max_value=64)
per_node = st.integers(min_value=0, max_value=16)


@given(job_ids)
def test_the_port_is_in_the_safe_range_and_the_same_every_time(job_id: int) -> None:
    port = rendezvous_port(job_id)
    assert PORT_BASE <= port < PORT_BASE + PORT_SPAN < 32768  # below the ephemeral ports
    assert port == rendezvous_port(job_id)


@given(job_ids, node_counts, per_node)
def test_every_node_gets_the_same_meeting_point_and_its_own_rank(
    job_id: int, nodes: int, gpus_per_node: int
) -> None:
    gang = gang_of(job_id, nodes, nodes * gpus_per_node, "node-a")
    envs = [node_environment(gang, rank) for rank in range(nodes)]
    assert all(set(env) == set(VARIABLES) for env in envs)
    assert [env["NODE_RANK"] for env in envs] == [str(r) for r in range(nodes)]
    ranks = ("NODE_RANK", "PET_NODE_RANK")
    shared = {k: {env[k] for env in envs} for k in VARIABLES if k not in ranks}
    assert all(env["PET_NODE_RANK"] == env["NODE_RANK"] for env in envs)
    assert all(len(values) == 1 for values in shared.values())
    env = envs[0]
    assert env["MASTER_ADDR"] == "node-a"
    assert env["MASTER_PORT"] == str(rendezvous_port(job_id))
    assert env["NNODES"] == str(nodes)
    assert env["GPUS_PER_NODE"] == str(gpus_per_node)
    assert env["LOCAL_WORLD_SIZE"] == str(max(1, gpus_per_node))
    assert int(env["WORLD_SIZE"]) == nodes * int(env["LOCAL_WORLD_SIZE"])


@given(node_counts, per_node)
def test_gpus_are_dealt_out_whole_and_once(nodes: int, gpus_per_node: int) -> None:
    gpus = list(range(100, 100 + nodes * gpus_per_node))
    shares = split_gpus(gpus, nodes)
    assert [g for share in shares for g in share] == gpus  # in order, none twice, none lost
    assert {len(share) for share in shares} <= {gpus_per_node}
    gang = gang_of(1, nodes, len(gpus), "h")
    envs = gang_environments(gang, {"KEEP": "x"}, gpus)
    for env, share in zip(envs, shares, strict=True):
        assert env["CUDA_VISIBLE_DEVICES"] == ",".join(map(str, share))
        assert env["KEEP"] == "x"


@given(node_counts, per_node)
def test_gpus_per_node_gives_the_total(nodes: int, gpus_per_node: int) -> None:
    total = nodes * gpus_per_node
    assert total_gpus(None, gpus_per_node, nodes) == total
    assert total_gpus(total, gpus_per_node, nodes) == total
    assert total_gpus(total, None, nodes) == total
    assert total_gpus(None, None, nodes) is None


@given(st.integers(min_value=2, max_value=64), st.integers(min_value=1, max_value=1000))
def test_a_total_that_does_not_split_evenly_is_refused_naming_the_numbers(
    nodes: int, gpus: int
) -> None:
    if gpus % nodes == 0:
        assert total_gpus(gpus, None, nodes) == gpus
        return
    with pytest.raises(InvalidInput, match=f"{gpus} GPUs do not split evenly over {nodes} nodes"):
        total_gpus(gpus, None, nodes)


def test_a_total_and_a_count_per_node_that_disagree_are_refused() -> None:
    with pytest.raises(
        InvalidInput, match=re.escape("8 GPUs per node on 2 node(s) is 16 GPUs, but the job asks 8")
    ):
        total_gpus(8, 8, 2)


def test_a_rank_outside_the_gang_is_a_bug() -> None:
    with pytest.raises(ValueError, match="not one of the job's 2 nodes"):
        node_environment(gang_of(1, 2, 0, "h"), 2)
