"""Every waiting job gets a reason: one example per reason code."""

from __future__ import annotations

from dataclasses import replace

from fabriek.domain.jobs import JobSpec
from fabriek.domain.sites import NodeGroup
from fabriek.scheduler import (
    Policy,
    SchedulerConfig,
    Signals,
    Wait,
    WaitReason,
    never_fits,
    site_from_groups,
)
from fabriek.scheduler import schedule as run_cycle
from fabriek.scheduler.signals import HourSignal

from .factories import allocation, pending, running, site, snapshot


def reasons(result_waits: list[Wait]) -> dict[int, WaitReason]:
    return {w.job_id: w.reason for w in result_waits}


def test_every_reason_has_words() -> None:
    for reason in WaitReason:
        assert reason.words()
        assert "\n" not in reason.words()


def test_never_fits_at_submission_and_in_a_cycle() -> None:
    sites = [site(nodes=2, gpus=8)]
    assert never_fits(JobSpec(name="big", gpus=17), sites)
    assert not never_fits(JobSpec(name="two nodes", gpus=16), sites)
    assert never_fits(JobSpec(name="wrong type", gpus=1, gpu_type="a100"), sites)
    result = run_cycle(snapshot([pending(1, gpus=24)], sites))
    assert reasons(result.waits) == {1: WaitReason.NEVER_FITS}


def test_never_fits_from_node_groups() -> None:
    groups = [
        NodeGroup("gpu", count=4, gpu_type="h100", gpus_per_node=8, cpus_per_node=96,
                  memory_gb_per_node=2048),
        NodeGroup("cpu", count=10, gpu_type=None, gpus_per_node=0, cpus_per_node=128,
                  memory_gb_per_node=512),
    ]  # fmt: skip
    site_state = site_from_groups("ams", groups)
    assert len(site_state.nodes) == 4
    assert not never_fits(JobSpec(name="j", gpus=32, gpu_type="h100"), [site_state])
    assert never_fits(JobSpec(name="j", gpus=40), [site_state])


def test_whole_nodes_of_one_pool_only() -> None:
    # 12 GPUs of 4-GPU nodes at two sites: 8 at each site is not 12 at one.
    sites = [site("a", nodes=2, gpus=4), site("b", nodes=2, gpus=4)]
    assert never_fits(JobSpec(name="j", gpus=12), sites)
    assert not never_fits(JobSpec(name="j", gpus=8), sites)


def test_no_allocation() -> None:
    result = run_cycle(snapshot([pending(1, project="nobody")]))
    assert reasons(result.waits) == {1: WaitReason.NO_ALLOCATION}


def test_not_before_start_time() -> None:
    result = run_cycle(snapshot([pending(1, earliest_start_s=100.0)], now=50.0))
    assert reasons(result.waits) == {1: WaitReason.NOT_BEFORE_START_TIME}
    later = run_cycle(snapshot([pending(1, earliest_start_s=100.0)], now=100.0))
    assert [s.job_id for s in later.starts] == [1]


def test_allocation_exhausted_counts_running_commitments() -> None:
    # Budget 10 GPU-h; a running job may still use 4 GPUs x 1 h; the new one needs 8.
    snap = snapshot(
        [pending(1, gpus=8, limit=3600.0)],
        running_jobs=[running(9, {"n0": 4}, end=3600.0)],
        allocations=[allocation(budget=10.0)],
    )
    waits = run_cycle(snap).waits
    assert reasons(waits) == {1: WaitReason.ALLOCATION_EXHAUSTED}
    # It needs 8 GPU-h, 10 - 4 = 6 are left: it says it is 2 GPU-h short.
    assert "needs 8.00 GPU-h" in waits[0].words and "2.00 GPU-h short" in waits[0].words


def test_budget_is_charged_at_the_gpu_types_factor() -> None:
    # 4 H100 GPU-h at factor 1.5 cost 6 normalised GPU-h: over a budget of 5, under one of 6.
    def cycle(budget: float, gpu_type: str | None) -> set[int]:
        snap = replace(
            snapshot(
                [pending(1, gpus=4, limit=3600.0, gpu_type=gpu_type)],
                sites=[site(gpu_type="h100"), site("s2", gpu_type="a100", prefix="a")],
                allocations=[allocation(budget=budget)],
            ),
            gpu_hour_factors={"h100": 1.5, "a100": 0.5},
        )
        return {s.job_id for s in run_cycle(snap).starts}

    assert cycle(5.0, "h100") == set()
    assert cycle(6.0, "h100") == {1}
    assert cycle(2.0, "a100") == {1}
    # A job that takes any type is checked at the dearest type it could land on.
    assert cycle(5.0, None) == set()


def test_allocation_restricted_to_its_sites() -> None:
    snap = snapshot(
        [pending(1, gpus=8)],
        sites=[site("s1", free=[0, 0]), site("s2", prefix="m")],
        allocations=[replace(allocation(), sites=frozenset({"s1"}))],
    )
    starts = run_cycle(snap).starts
    assert starts == []
    anywhere = replace(snap, allocations={"p1": allocation()})
    assert [s.site for s in run_cycle(anywhere).starts] == ["s2"]


def test_residency_constraint() -> None:
    # s1 is full, s2 free. A job whose datasets allow only s1 waits, and says why; the same
    # job without the constraint starts on s2. One allowed nowhere with GPUs never fits
    # because of its data, not of its size.
    sites = [site("s1", free=[0, 0]), site("s2", prefix="m")]
    held = pending(1, gpus=8, sites=frozenset({"s1"}))
    result = run_cycle(snapshot([held], sites=sites))
    assert result.starts == []
    assert reasons(result.waits) == {1: WaitReason.RESIDENCY_CONSTRAINT}
    free = run_cycle(snapshot([replace(held, sites=None)], sites=sites))
    assert [s.site for s in free.starts] == ["s2"]
    nowhere = run_cycle(snapshot([replace(held, sites=frozenset({"s3"}))], sites=sites))
    assert reasons(nowhere.waits) == {1: WaitReason.RESIDENCY_CONSTRAINT}
    # Its own sites narrow the allocation's, never widen them.
    narrowed = snapshot(
        [replace(held, sites=frozenset({"s1", "s2"}))],
        sites=sites,
        allocations=[replace(allocation(), sites=frozenset({"s1"}))],
    )
    assert run_cycle(narrowed).starts == []


def test_resources_priority_and_reserved_for_larger_job() -> None:
    # n0 has 4 GPUs free and 4 busy for an hour; n1 is busy for longer. The 8-GPU job is
    # first in line and gets n0 in an hour (Resources). A 4-GPU job of 2 h would fit on
    # n0 now but outlast that (ReservedForLargerJob); one of 30 min backfills; a 16-GPU
    # job cannot fit in what is free at all (Priority).
    snap = snapshot(
        [
            pending(1, gpus=8, submit=0.0),
            pending(2, gpus=4, limit=7200.0, submit=1.0),
            pending(3, gpus=16, submit=2.0),
            pending(4, gpus=4, limit=1800.0, submit=3.0),
        ],
        sites=[site(nodes=2, gpus=8, free=[4, 0])],
        running_jobs=[running(8, {"n0": 4}, end=3600.0), running(9, {"n1": 8}, end=9000.0)],
        now=10.0,
    )
    result = run_cycle(snap, SchedulerConfig(policy=Policy.BACKFILL))
    assert reasons(result.waits) == {
        1: WaitReason.RESOURCES,
        2: WaitReason.RESERVED_FOR_LARGER_JOB,
        3: WaitReason.PRIORITY,
    }
    assert [s.job_id for s in result.starts] == [4]
    assert result.reservation is not None
    assert (result.reservation.job_id, result.reservation.start_s) == (1, 3600.0)


def test_fifo_blocks_behind_the_first() -> None:
    snap = snapshot(
        [pending(1, gpus=16, submit=0.0), pending(2, gpus=1, submit=1.0)],
        sites=[site(nodes=2, gpus=8, free=[8, 4])],
        running_jobs=[running(9, {"n1": 4}, end=3600.0)],
        now=10.0,
    )
    result = run_cycle(snap, SchedulerConfig(policy=Policy.FIFO))
    assert reasons(result.waits) == {1: WaitReason.RESOURCES, 2: WaitReason.PRIORITY}
    assert result.reservation is None


def test_power_capped() -> None:
    # 1 kW at the site: one 700 W H100 already runs, a second does not fit the budget.
    signals = Signals(start_s=0.0, by_site={"s1": [HourSignal(power_budget_kw=1.0)]})
    snap = snapshot(
        [pending(1, gpus=1)],
        sites=[site(nodes=1, gpus=8, free=[7])],
        running_jobs=[running(9, {"n0": 1}, end=3600.0)],
        signals=signals,
    )
    assert reasons(run_cycle(snap).waits) == {1: WaitReason.POWER_CAPPED}
    # The next hour has no budget set: the job starts.
    later = snapshot(
        [pending(1, gpus=1)],
        sites=[site(nodes=1, gpus=8, free=[7])],
        running_jobs=[running(9, {"n0": 1}, end=7200.0)],
        signals=signals,
        now=3600.0,
    )
    assert [s.job_id for s in run_cycle(later).starts] == [1]
