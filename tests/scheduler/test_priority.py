"""The `fabriek` priority: tiers first, then urgency (expansion factor) and fair share."""

from __future__ import annotations

from fabriek.domain.units import GpuHours
from fabriek.scheduler import Policy, SchedulerConfig, schedule
from fabriek.scheduler.priority import PriorityWeights, priority_order

from .factories import allocation, pending, site, snapshot


def test_short_job_that_waited_goes_first_and_long_waiters_age() -> None:
    jobs = [pending(1, limit=36_000.0, submit=0.0), pending(2, limit=600.0, submit=500.0)]
    allocs = {"p1": allocation()}
    order = priority_order(jobs, 1000.0, allocs, {}, PriorityWeights())
    assert [j.job_id for j in order] == [2, 1]
    # After a long wait the long job's expansion factor overtakes a new short job's.
    later = [pending(1, limit=36_000.0, submit=0.0), pending(2, limit=600.0, submit=99_000.0)]
    order = priority_order(later, 100_000.0, allocs, {}, PriorityWeights())
    assert [j.job_id for j in order] == [1, 2]


def test_tier_outranks_everything() -> None:
    allocs = [allocation("low", "o1", tier=0), allocation("high", "o2", tier=1)]
    snap = snapshot(
        [
            pending(1, limit=60.0, submit=0.0, project="low"),
            pending(2, gpus=8, limit=86_400.0, submit=999.0, project="high"),
        ],
        sites=[site(nodes=1)],
        allocations=allocs,
        now=1000.0,
    )
    result = schedule(snap)
    assert [s.job_id for s in result.starts] == [2]


def test_fair_share_puts_the_light_user_first() -> None:
    snap = snapshot(
        [
            pending(1, gpus=8, submit=0.0, user="heavy"),
            pending(2, gpus=8, submit=0.0, user="light"),
        ],
        sites=[site(nodes=1)],
        usage={("p1", "heavy"): GpuHours(1000.0), ("p1", "light"): GpuHours(1.0)},
        now=100.0,
    )
    assert [s.job_id for s in schedule(snap).starts] == [2]
    # Submission order ignores it.
    assert [s.job_id for s in schedule(snap, SchedulerConfig(policy=Policy.BACKFILL)).starts] == [1]
