"""Deadlines before carbon: a flexible job is held for a cleaner hour only where its GPUs
and grid power are sure to be there then (`carbon_hold.Ledger`, `carbon_hold.safe_hold`), and
held jobs give way to jobs that cannot wait while there is still room to start them."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fabriek.scheduler import HourSignal, Signals, schedule
from fabriek.scheduler.carbon import HOUR_S, Profile
from fabriek.scheduler.carbon_hold import HoldAsk, Ledger, safe_hold
from fabriek.scheduler.power import PowerModel
from fabriek.scheduler.reasons import WaitReason
from tests.scheduler.factories import pending, site, snapshot

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

# A clean midday, a dirty evening: 100 at hours 10-13, 500 at 17-21, 300 otherwise.
DAY = [100.0 if 10 <= h < 14 else 500.0 if 17 <= h < 22 else 300.0 for h in range(24)]

running_jobs = st.lists(
    st.tuples(st.floats(0, 40 * HOUR_S), st.integers(1, 8), st.floats(100, 800)), max_size=8
)
asks = st.lists(
    st.tuples(
        st.integers(1, 8),  # GPUs
        st.floats(300, 30 * HOUR_S),  # time limit
        st.floats(0.5, 14.0),  # latest start (hours from the hour's start, less the guard)
    ),
    min_size=1,
    max_size=12,
)


def planned_power(ledger: Ledger, running: list[tuple[float, int, float]], t: float) -> float:
    """Watts planned at `t`: running jobs until their limits end, and every promise."""
    still = sum(w for end, _, w in running if end > t)
    promised = sum(w for s, e, _, w in ledger._promises if s <= t < e)
    return still + promised


@settings(max_examples=120, deadline=None)
@given(
    running_jobs,
    asks,
    st.integers(0, 16),
    st.floats(2_000, 20_000) | st.just(math.inf),
    st.lists(st.floats(50, 600), min_size=24, max_size=24),
    st.floats(0, 0.99),
)
def test_a_planned_start_is_never_after_the_latest_safe_start_nor_over_the_cap(
    running: list[tuple[float, int, float]],
    jobs: list[tuple[int, float, float]],
    free: int,
    cap_w: float,
    carbon: list[float],
    offset_h: float,
) -> None:
    now = 1000 * HOUR_S + offset_h * HOUR_S
    hour_start = 1000 * HOUR_S
    running = [(now + end, gpus, watts) for end, gpus, watts in running]
    used = sum(w for _, _, w in running)
    budget = None if cap_w == math.inf else (lambda t0, t1: cap_w)
    ledger = Ledger(now, free, used, budget, running)
    profile = Profile(carbon)
    for gpus, limit, latest_h in jobs:
        watts = 500.0 * gpus
        ask = HoldAsk(gpus, watts, limit, (0.5, 1.0, 2.0), latest_h)
        hours = [hour_start + h * HOUR_S for h in range(1, math.floor(latest_h) + 1)]
        latest_safe = ledger.latest_safe_start(gpus, watts, limit, hours)
        found = safe_hold(profile, hour_start, offset_h, ask, 0.0, ledger)
        if found is None:
            continue
        start = hour_start + found[0] * HOUR_S
        # Never after the latest safe start (so never after its latest start either).
        assert latest_safe is not None and start <= latest_safe
        assert found[0] <= latest_h
        # A cleaner hour, by the forecast.
        assert found[1] < found[2]
        ledger.promise(start, gpus, watts, limit)
    # What is promised never exceeds the GPUs or the cap, in any hour from the first
    # promise on (the running jobs alone may be over before, as they were given).
    if not ledger._promises:
        return
    first = min(s for s, _, _, _ in ledger._promises)
    points = {s for s, _, _, _ in ledger._promises} | {e for e, _, _ in running if e > first}
    for t in sorted(points):
        if t < first:
            continue
        if any(s <= t < e for s, e, _, _ in ledger._promises):
            gpus_free = free + sum(g for end, g, _ in running if end <= t)
            gpus_promised = sum(g for s, e, g, _ in ledger._promises if s <= t < e)
            assert gpus_promised <= gpus_free
            if cap_w < math.inf:
                assert planned_power(ledger, running, t) <= cap_w + 1e-6


def test_a_hold_is_taken_only_at_an_hour_where_the_job_fits() -> None:
    # 8 GPUs free now; a running job holds 8 more until hour 6. The clean hours are
    # 10-13: a 16-GPU job fits only from hour 6 on, so it is held to 10 (the cleanest
    # that fits); a promise of 8 GPUs over hours 9-12 leaves it only hours 13 on.
    profile = Profile(DAY)
    running = [(6 * HOUR_S, 8, 0.0)]
    ledger = Ledger(0.0, 8, 0.0, None, running)
    ask = HoldAsk(16, 0.0, 3 * HOUR_S, (1.0,), 14.0)
    found = safe_hold(profile, 0.0, 0.0, ask, 0.0, ledger)
    assert found is not None and found[0] == 10
    ledger.promise(9 * HOUR_S, 8, 0.0, 4 * HOUR_S)
    found = safe_hold(profile, 0.0, 0.0, ask, 0.0, ledger)
    assert found is not None and found[0] == 13
    # Nothing cleaner than now fits: it is not held.
    ledger.promise(13 * HOUR_S, 8, 0.0, 10 * HOUR_S)
    assert safe_hold(Profile(DAY), 0.0, 0.0, ask, 0.0, ledger) is None


def test_a_grid_cap_keeps_a_hold_to_hours_with_power_for_it() -> None:
    # Free GPUs are plenty, but the cap leaves 1 kW now and 3 kW once the running job's
    # limit ends at hour 11: a 2 kW job is held to 11, not to the cleanest hour 10.
    ledger = Ledger(0.0, 64, 2_000.0, lambda t0, t1: 3_000.0, [(11 * HOUR_S, 4, 2_000.0)])
    ask = HoldAsk(4, 2_000.0, HOUR_S, (1.0,), 14.0)
    found = safe_hold(Profile(DAY), 0.0, 0.0, ask, 0.0, ledger)
    assert found is not None and found[0] == 11


def test_held_jobs_give_way_while_there_is_room_to_start_them() -> None:
    # 16 GPUs. Two 4-GPU flexible jobs may wait for the clean midday; with 10 GPUs asked
    # for by jobs that cannot wait, 6 are spare: only one of them can be held and still
    # find room should more such jobs come, so the other starts at once.
    signals = Signals(
        by_site={"s1": [HourSignal(None, v) for v in DAY * 10]},
        power=PowerModel(utilisation=1.0, pue=1.0),
    )
    now = 8 * 86400 + 6 * 3600.0
    flexible = [
        pending(i, gpus=4, limit=3600.0, submit=now - 10 * i, latest_start_s=now + 12 * 3600)
        for i in (1, 2)
    ]
    rigid = [pending(i, gpus=2, submit=now - 5) for i in range(3, 8)]
    result = schedule(snapshot([*flexible, *rigid], sites=[site()], signals=signals, now=now))
    held = [w.job_id for w in result.waits if w.reason is WaitReason.CLEANER_HOUR]
    assert len(held) == 1
    assert {s.job_id for s in result.starts} == {3, 4, 5, 6, 7} | ({1, 2} - set(held))


@pytest.mark.skipif(not (DATA / "traces" / "philly_2017.csv").exists(), reason="shared data")
@pytest.mark.parametrize("capped", [False, True])
def test_the_robustness_benchmark_keeps_its_invariants_on_a_tiny_sample(capped: bool) -> None:
    from bench.carbon_robustness import CARBON, TRACE, Setting, Task, replay

    setting = Setting(TRACE, CARBON, 600, 3, 0.5, 0.5, 12.0, (1.0, 5.0), 0.6, 5.0, 21)
    run = replay(setting, Task("NL", 6, capped))
    assert run["jobs"] > 0
    assert run["violations"] == 0
    assert int(run["misses"]) <= int(run["misses_immediate"])  # type: ignore[call-overload]
