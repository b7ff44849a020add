"""Metrics and the lower bounds they are judged against."""

from __future__ import annotations

import pytest

from fabriek.scheduler.metrics import (
    JobOutcome,
    jain_index,
    makespan_lower_bound,
    percentile,
    summarise,
)


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.95) == 95.0
    assert percentile(values, 0.5) == 50.0
    assert percentile([], 0.5) == 0.0


def test_jain_index() -> None:
    assert jain_index([2.0, 2.0, 2.0]) == pytest.approx(1.0)
    assert jain_index([1.0, 0.0, 0.0, 0.0]) == pytest.approx(0.25)


def test_makespan_bound_uses_late_work() -> None:
    # Two 1-GPU jobs of 10 s at t=100 on one GPU: at least 100 + 20 from t=0.
    jobs = [(0.0, 1.0, 1), (100.0, 10.0, 1), (100.0, 10.0, 1)]
    assert makespan_lower_bound(jobs, 1) == 120.0


def test_summary_of_a_tiny_replay() -> None:
    outcomes = [
        JobOutcome("j1", "a", 1, 0.0, 0.0, 100.0, 100.0, 100.0),
        JobOutcome("j2", "b", 1, 0.0, 100.0, 101.0, 1.0, 1.0),
    ]
    s = summarise(outcomes, gpus=1)
    assert s.makespan_s == 101.0
    assert s.utilization == pytest.approx(101.0 / 101.0)
    assert s.avg_jct_s == pytest.approx(100.5)
    assert s.max_wait_s == 100.0
    # b: 101 s against a 10 s bound -> 10.1; a: 1.
    assert s.avg_bounded_slowdown == pytest.approx((1.0 + 10.1) / 2)
    assert s.lower_bound_avg_jct_s == pytest.approx(50.5)
