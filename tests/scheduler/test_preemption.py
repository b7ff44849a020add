"""Preemption: preemptible tracks yield to higher tiers, only when that is the only way."""

from __future__ import annotations

from fabriek.scheduler import NodeShare, Policy, SchedulerConfig, schedule

from .factories import allocation, pending, running, site, snapshot

ALLOCS = [
    allocation("play", "o1", tier=0, preemptible=True),
    allocation("large", "o2", tier=2),
    allocation("other", "o3", tier=0),
]


def test_higher_tier_preempts_the_least_it_must() -> None:
    snap = snapshot(
        [pending(1, gpus=8, project="large")],
        sites=[site(nodes=2, free=[0, 2])],
        running_jobs=[
            running(7, {"n0": 8}, end=9000.0, project="play", start=10.0),
            running(8, {"n1": 2}, end=9000.0, project="play", start=20.0),
            running(9, {"n1": 4}, end=9000.0, project="play", start=30.0),
        ],
        allocations=ALLOCS,
        now=100.0,
    )
    result = schedule(snap)
    # n1: 2 free + job 9's 4 + job 8's 2 = 8 by stopping 6 GPUs; n0 would cost 8.
    assert sorted(p.job_id for p in result.preemptions) == [8, 9]
    assert all(p.for_job_id == 1 and "tier 2" in p.words for p in result.preemptions)
    (start,) = result.starts
    assert start.nodes == (NodeShare("n1", 8),)
    kinds = [type(d).__name__ for d in result.decisions]
    assert kinds.index("Start") > max(i for i, k in enumerate(kinds) if k == "Preempt")


def test_no_preemption_when_the_job_fits() -> None:
    snap = snapshot(
        [pending(1, gpus=8, project="large")],
        sites=[site(nodes=2, free=[0, 8])],
        running_jobs=[running(7, {"n0": 8}, end=9000.0, project="play")],
        allocations=ALLOCS,
    )
    result = schedule(snap)
    assert result.preemptions == [] and len(result.starts) == 1


def test_only_preemptible_and_lower_tiers_yield() -> None:
    snap = snapshot(
        [pending(1, gpus=8, project="large"), pending(2, gpus=8, project="other", submit=1.0)],
        sites=[site(nodes=1, free=[0])],
        running_jobs=[running(7, {"n0": 8}, end=9000.0, project="other")],
        allocations=ALLOCS,
    )
    assert schedule(snap).preemptions == []
    # A job marked preemptible yields even on a non-preemptible track.
    snap2 = snapshot(
        [pending(1, gpus=8, project="large")],
        sites=[site(nodes=1, free=[0])],
        running_jobs=[running(7, {"n0": 8}, end=9000.0, project="other", preemptible=True)],
        allocations=ALLOCS,
    )
    assert [p.job_id for p in schedule(snap2).preemptions] == [7]


def test_baselines_never_preempt() -> None:
    snap = snapshot(
        [pending(1, gpus=8, project="large")],
        sites=[site(nodes=1, free=[0])],
        running_jobs=[running(7, {"n0": 8}, end=9000.0, project="play")],
        allocations=ALLOCS,
    )
    for policy in (Policy.FIFO, Policy.BACKFILL):
        assert schedule(snap, SchedulerConfig(policy=policy)).preemptions == []
    assert schedule(snap, SchedulerConfig(preemption=False)).preemptions == []


def test_multi_node_preemption() -> None:
    snap = snapshot(
        [pending(1, gpus=16, project="large")],
        sites=[site(nodes=3, free=[0, 0, 8])],
        running_jobs=[
            running(7, {"n0": 8}, end=9000.0, project="play"),
            running(8, {"n1": 8}, end=9000.0, project="other"),
        ],
        allocations=ALLOCS,
    )
    result = schedule(snap)
    assert [p.job_id for p in result.preemptions] == [7]
    assert {s.node for s in result.starts[0].nodes} == {"n0", "n2"}
