"""The trace simulator: small exact replays, skipped jobs, determinism, invariants."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fabriek.scheduler import TraceRow, load_trace, run_simulation

TRACES = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "traces"
PHILLY = TRACES / "philly_2017.csv"

REQUIRED_KEYS = {
    "jobs",
    "skipped",
    "makespan_s",
    "utilization",
    "avg_jct_s",
    "median_jct_s",
    "p95_jct_s",
    "avg_wait_s",
    "max_wait_s",
    "avg_bounded_slowdown",
    "jain_fairness",
    "lower_bound_avg_jct_s",
    "lower_bound_makespan_s",
}


def row(job_id: str, submit: float, duration: float, gpus: int, **kw: object) -> TraceRow:
    return TraceRow(job_id, submit, duration, gpus, **kw)  # type: ignore[arg-type]


# One node of 4 GPUs: a runs on 2; b wants all 4; c is short and fits beside a.
TRACE = [row("a", 0, 100, 2), row("b", 1, 100, 4), row("c", 2, 10, 2)]


def starts(result_outcomes: object) -> dict[str, float]:
    return {o.job_id: o.start_s for o in result_outcomes}  # type: ignore[attr-defined]


def test_fifo_waits_backfill_slips_the_short_job_in() -> None:
    fifo = run_simulation(TRACE, nodes=1, gpus_per_node=4, policy="fifo")
    assert starts(fifo.outcomes) == {"a": 0, "b": 100, "c": 200}
    backfill = run_simulation(TRACE, nodes=1, gpus_per_node=4, policy="backfill")
    assert starts(backfill.outcomes) == {"a": 0, "b": 100, "c": 2}
    assert backfill.summary.avg_jct_s < fifo.summary.avg_jct_s


def test_scheduler_sees_the_overestimate_not_the_duration() -> None:
    # c (95 s, at t=10) fits beside a (100 s) only if the estimates say it ends before
    # a's limit, where b is reserved: 10 + 95x <= 100x holds for x = 2, not for x = 1.
    trace = [row("a", 0, 100, 2), row("b", 1, 100, 4), row("c", 10, 95, 2)]
    exact = run_simulation(trace, nodes=1, gpus_per_node=4, policy="backfill", overestimate=1)
    assert starts(exact.outcomes) == {"a": 0, "b": 100, "c": 200}
    double = run_simulation(trace, nodes=1, gpus_per_node=4, policy="backfill", overestimate=2)
    assert starts(double.outcomes) == {"a": 0, "b": 105, "c": 10}


def test_time_limit_column_is_used_and_ends_jobs() -> None:
    trace = [row("a", 0, 100, 1, time_limit_s=50.0), row("b", 0, 10, 1)]
    result = run_simulation(trace, nodes=1, gpus_per_node=1, policy="fifo")
    assert result.timed_out == 1
    assert {o.job_id: o.end_s for o in result.outcomes}["a"] == 50


def test_too_big_jobs_are_reported_and_skipped() -> None:
    trace = [row("small", 0, 10, 8), row("huge", 0, 10, 32), row("typed", 0, 5, 1)]
    result = run_simulation(trace, nodes=2, gpus_per_node=8)
    assert (result.jobs, result.skipped) == (2, 1)
    (skip,) = result.skipped_jobs
    assert skip.job_id == "huge" and "32" in skip.reason
    as_dict = result.to_dict()
    assert as_dict.keys() >= REQUIRED_KEYS
    assert as_dict["skipped_jobs"] == [{"job_id": "huge", "num_gpus": 32, "reason": skip.reason}]


def test_gpu_types_get_their_own_nodes() -> None:
    trace = [row("a", 0, 100, 8, gpu_type="a100"), row("b", 0, 100, 8, gpu_type="h100")]
    result = run_simulation(trace, nodes=2, gpus_per_node=8, sites=2)
    assert result.skipped == 0 and starts(result.outcomes) == {"a": 0, "b": 0}


def test_bad_parameters_are_one_line_errors() -> None:
    for kwargs in ({"nodes": 0}, {"gpus_per_node": 0}, {"sites": 5}, {"overestimate": 0}):
        args: dict[str, object] = {"nodes": 2, "gpus_per_node": 8, **kwargs}
        with pytest.raises(ValueError) as caught:
            run_simulation(TRACE, **args)  # type: ignore[arg-type]
        assert "\n" not in str(caught.value)
    with pytest.raises(ValueError):
        run_simulation(TRACE, 1, 4, policy="lottery")


def test_empty_trace() -> None:
    result = run_simulation([], nodes=1, gpus_per_node=8)
    assert result.jobs == 0 and result.summary.avg_jct_s == 0.0


traces = st.lists(
    st.builds(
        TraceRow,
        job_id=st.just(""),
        submit_time_s=st.integers(0, 500).map(float),
        duration_s=st.integers(0, 300).map(float),
        num_gpus=st.sampled_from([1, 1, 2, 4, 8, 16]),
        tenant=st.sampled_from([None, "t1", "t2"]),
    ),
    max_size=25,
).map(lambda rows: [TraceRow(f"j{i}", *_fields(r)) for i, r in enumerate(rows)])


def _fields(r: TraceRow) -> tuple[float, float, int, str | None]:
    return (r.submit_time_s, r.duration_s, r.num_gpus, r.tenant)


@settings(max_examples=40, deadline=None)
@given(traces, st.sampled_from(["fifo", "backfill", "fabriek"]), st.sampled_from([1.0, 2.0]))
def test_replay_invariants_and_determinism(trace: list[TraceRow], policy: str, over: float) -> None:
    first = run_simulation(trace, 2, 8, policy=policy, overestimate=over)
    again = run_simulation(list(trace), 2, 8, policy=policy, overestimate=over)
    assert first == again
    assert first.jobs + first.skipped == len(trace)
    events: list[tuple[float, int]] = []
    for o in first.outcomes:
        assert o.start_s >= o.submit_s
        assert o.end_s == pytest.approx(o.start_s + o.run_s)
        events += [(o.start_s, o.gpus), (o.end_s, -o.gpus)]
    in_use = 0
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):
        in_use += delta
        assert in_use <= 16
    s = first.summary
    if first.jobs:
        assert s.avg_jct_s >= s.lower_bound_avg_jct_s - 1e-9
        assert s.makespan_s >= s.lower_bound_makespan_s - 1e-9
        assert 0.0 <= s.utilization <= 1.0 + 1e-9
        assert 0.0 < s.jain_fairness <= 1.0 + 1e-9


@pytest.mark.skipif(not PHILLY.exists(), reason=f"development trace absent: {PHILLY}")
def test_philly_sample_all_policies() -> None:
    # 1,200 jobs from the busy weeks on 64 GPUs: queueing matters, and it runs in seconds.
    rows = load_trace(PHILLY)[20_000:21_200]
    results = {p: run_simulation(rows, 8, 8, policy=p) for p in ("fifo", "backfill", "fabriek")}
    for r in results.values():
        assert r.jobs + r.skipped == len(rows)
        assert r.summary.avg_jct_s >= r.summary.lower_bound_avg_jct_s
    fab, bf = results["fabriek"].summary, results["backfill"].summary
    assert fab.avg_bounded_slowdown <= bf.avg_bounded_slowdown
    assert fab.avg_jct_s <= bf.avg_jct_s
