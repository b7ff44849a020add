"""The `sjf-aged` order: shortest estimated job first, aged by submission."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from fabriek.scheduler import Policy, SchedulerConfig, schedule
from fabriek.scheduler.priority import PriorityWeights, sjf_order, virtual_deadline

from .factories import allocation, pending, running, site, snapshot

times = st.floats(0.0, 1e7, allow_nan=False)
estimates = st.floats(0.0, 1e7, allow_nan=False)
shares = st.floats(0.0, 1.0, allow_nan=False)
stretches = st.floats(0.0, 100.0, allow_nan=False)


@given(times, estimates, shares, times, estimates, shares, stretches)
def test_aging_never_lets_a_job_wait_behind_later_jobs_forever(
    submit: float,
    est: float,
    share: float,
    later_by: float,
    other_est: float,
    other_share: float,
    stretch: float,
) -> None:
    """A job submitted more than stretch x the estimate cap after another never ranks
    before it, whatever their estimates and fair shares: the jobs that can overtake a
    job are the finitely many submitted before that bound."""
    weights = PriorityWeights(stretch=stretch)
    bound = stretch * weights.max_requested_s
    first = virtual_deadline(submit, est, share, weights)
    later = virtual_deadline(submit + bound + later_by + 1.0, other_est, other_share, weights)
    assert first < later


@given(times, estimates, estimates, shares, stretches)
def test_a_shorter_estimate_never_ranks_after_a_longer_one(
    submit: float, a: float, b: float, share: float, stretch: float
) -> None:
    weights = PriorityWeights(stretch=stretch)
    short, long_ = sorted((a, b))
    assert virtual_deadline(submit, short, share, weights) <= virtual_deadline(
        submit, long_, share, weights
    )


@given(st.lists(st.tuples(times, estimates, st.sampled_from(["p1", "p2"])), max_size=30))
def test_order_is_a_permutation_with_tiers_first(jobs: list[tuple[float, float, str]]) -> None:
    pend = [pending(i, limit=max(e, 1.0), submit=s, project=p) for i, (s, e, p) in enumerate(jobs)]
    allocs = {"p1": allocation("p1"), "p2": allocation("p2", "o2", tier=1)}
    order = sjf_order(pend, 1e7, allocs, {}, PriorityWeights())
    assert sorted(j.job_id for j in order) == list(range(len(jobs)))
    projects = [j.project for j in order]
    assert projects == sorted(projects, key=lambda p: p != "p2")


def test_short_job_goes_first_and_a_long_one_ages_into_first_place() -> None:
    weights = PriorityWeights(stretch=1.0)
    allocs = {"p1": allocation()}
    jobs = [pending(1, limit=36_000.0, submit=0.0), pending(2, limit=600.0, submit=500.0)]
    assert [j.job_id for j in sjf_order(jobs, 1000.0, allocs, {}, weights)] == [2, 1]
    later = [pending(1, limit=36_000.0, submit=0.0), pending(2, limit=600.0, submit=40_000.0)]
    assert [j.job_id for j in sjf_order(later, 41_000.0, allocs, {}, weights)] == [1, 2]


def test_the_cycle_starts_the_shortest_job_where_backfill_starts_the_first() -> None:
    snap = snapshot(
        [pending(1, gpus=8, limit=86_400.0, submit=0.0), pending(2, gpus=8, limit=600.0)],
        sites=[site(nodes=1)],
        now=100.0,
    )
    assert [s.job_id for s in schedule(snap, SchedulerConfig(policy=Policy.SJF_AGED)).starts] == [2]
    assert [s.job_id for s in schedule(snap, SchedulerConfig(policy=Policy.BACKFILL)).starts] == [1]


def test_the_job_holding_the_reservation_keeps_it_against_shorter_newcomers() -> None:
    busy = [running(10, {"n0": 8}, end=1000.0), running(11, {"n1": 4}, end=500.0)]
    wide = pending(1, gpus=16, limit=86_400.0, submit=0.0)
    short = pending(2, gpus=8, limit=600.0, submit=90.0)
    snap = snapshot([wide, short], sites=[site(free=[0, 4])], running_jobs=busy, now=100.0)
    config = SchedulerConfig(policy=Policy.SJF_AGED)
    plain = schedule(snap, config).reservation
    assert plain is not None and plain.job_id == 2
    held = schedule(dataclasses.replace(snap, reserved_job_id=1), config).reservation
    assert held is not None and held.job_id == 1
    # Not sticky: the order alone decides.
    loose = SchedulerConfig(policy=Policy.SJF_AGED, weights=PriorityWeights(sticky=False))
    again = schedule(dataclasses.replace(snap, reserved_job_id=1), loose).reservation
    assert again is not None and again.job_id == 2
