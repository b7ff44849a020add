"""EASY backfill: the first blocked job's reservation, and jobs started around it."""

from __future__ import annotations

from fabriek.scheduler import NodeShare, Policy, SchedulerConfig, schedule

from .factories import pending, running, site, snapshot

BACKFILL = SchedulerConfig(policy=Policy.BACKFILL)


def test_reservation_at_earliest_end() -> None:
    # Two nodes each half busy, ending at 100 and 200: 8 GPUs on one node come at 100.
    snap = snapshot(
        [pending(1, gpus=8)],
        sites=[site(nodes=2, free=[4, 4])],
        running_jobs=[running(8, {"n0": 4}, end=200.0), running(9, {"n1": 4}, end=100.0)],
    )
    result = schedule(snap, BACKFILL)
    assert result.reservation is not None
    assert result.reservation.start_s == 100.0
    assert result.reservation.nodes == (NodeShare("n1", 8),)


def test_short_job_backfills_anywhere_long_job_only_off_the_reserved_nodes() -> None:
    snap = snapshot(
        [
            pending(1, gpus=8, submit=0.0),
            pending(2, gpus=4, limit=50.0, submit=1.0),
            pending(3, gpus=4, limit=5000.0, submit=2.0),
        ],
        sites=[site(nodes=2, free=[4, 4])],
        running_jobs=[running(8, {"n0": 4}, end=200.0), running(9, {"n1": 4}, end=100.0)],
        now=10.0,
    )
    result = schedule(snap, BACKFILL)
    starts = {s.job_id: s.nodes for s in result.starts}
    # Job 2 ends by 100 and may take the reserved node; job 3 outlasts it: only n0.
    assert starts[3] == (NodeShare("n0", 4),)
    assert starts[2] == (NodeShare("n1", 4),)


def test_multi_node_reservation() -> None:
    snap = snapshot(
        [pending(1, gpus=16), pending(2, gpus=1, limit=10_000.0, submit=1.0)],
        sites=[site(nodes=3, free=[8, 0, 7])],
        running_jobs=[running(8, {"n1": 8}, end=300.0), running(9, {"n2": 1}, end=100.0)],
        now=10.0,
    )
    result = schedule(snap, BACKFILL)
    assert result.reservation is not None
    assert result.reservation.start_s == 100.0
    assert {s.node for s in result.reservation.nodes} == {"n0", "n2"}
    # A long 1-GPU job may not take n0 or n2, and n1 is full: it waits.
    assert result.starts == []


def test_fifo_does_not_backfill() -> None:
    snap = snapshot(
        [pending(1, gpus=16), pending(2, gpus=1, limit=10.0, submit=1.0)],
        sites=[site(nodes=2, free=[8, 7])],
        running_jobs=[running(9, {"n1": 1}, end=100.0)],
        now=10.0,
    )
    assert schedule(snap, SchedulerConfig(policy=Policy.FIFO)).starts == []
    assert [s.job_id for s in schedule(snap, BACKFILL).starts] == [2]
