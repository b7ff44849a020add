"""Timing flexible jobs with heat demand and learned run lengths: the policy's holds, the
simulator's heat metering and what shifting may never do (start late, start early, wait
on a flat forecast)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fabriek.scheduler import HourSignal, Signals, TraceRow, run_simulation, schedule
from fabriek.scheduler.carbon import DEFAULT_GUARD_S, ShiftConfig
from fabriek.scheduler.carbon_series import HourlySeries
from fabriek.scheduler.policy import SchedulerConfig
from fabriek.scheduler.power import PowerModel
from fabriek.scheduler.reasons import WaitReason
from fabriek.scheduler.sim_energy import EnergySetup
from tests.scheduler.factories import pending, site, snapshot

HOUR = 3600.0
DAY_S = 86400.0


def signals(carbon: list[float], heat: list[float] | None = None) -> Signals:
    demand = heat if heat is not None else [None] * len(carbon)
    return Signals(
        by_site={"s1": [HourSignal(None, c, h) for c, h in zip(carbon, demand, strict=True)]},
        power=PowerModel(utilisation=1.0, pue=1.0),
    )


def held(snap_signals: Signals, weight: float, now: float, latest: float) -> bool:
    job = pending(1, limit=HOUR, submit=now, latest_start_s=latest)
    snap = snapshot([job], sites=[site()], signals=snap_signals, now=now)
    result = schedule(snap, SchedulerConfig(shift=ShiftConfig(heat_weight=weight)))
    return any(w.reason is WaitReason.CLEANER_HOUR for w in result.waits)


def test_heat_demand_holds_a_job_for_a_heat_hour_only_when_weighed() -> None:
    # Carbon is a flat 400 for ten days; heat is wanted only from 18:00 to 21:00. At 08:00
    # a flexible job is held for the heat hours when heat weighs (weight 1 or 0.5), and
    # starts at once when it does not (weight 0): a flat carbon forecast has nothing to wait
    # for.
    carbon = [400.0] * (10 * 24)
    heat = [1.0 if 18 <= h % 24 < 21 else 0.0 for h in range(10 * 24)]
    now = 8 * DAY_S + 8 * HOUR
    latest = now + 14 * HOUR
    assert held(signals(carbon, heat), 1.0, now, latest)
    assert held(signals(carbon, heat), 0.5, now, latest)
    assert not held(signals(carbon, heat), 0.0, now, latest)
    assert not held(signals(carbon), 1.0, now, latest)
    # A heat hour beyond its latest start does not hold it.
    assert not held(signals(carbon, heat), 1.0, now, now + 8 * HOUR)


def test_heat_is_taken_as_known_ahead_not_forecast_from_its_past() -> None:
    # Heat demand that has never been seen before (none in the past week) still counts:
    # it is a calendar profile of the hours to come, not a series to forecast.
    carbon = [400.0] * (10 * 24)
    now = 8 * DAY_S + 8 * HOUR
    first_heat = int(now // HOUR) + 5
    heat = [1.0 if h == first_heat else 0.0 for h in range(10 * 24)]
    job = pending(1, limit=HOUR, submit=now, latest_start_s=now + 10 * HOUR)
    snap = snapshot([job], sites=[site()], signals=signals(carbon, heat), now=now)
    result = schedule(snap, SchedulerConfig(shift=ShiftConfig(heat_weight=1.0)))
    assert result.wake_s == first_heat * HOUR


def series(day: list[float], scales: list[float]) -> list[float]:
    """A daily shape scaled day by day (weather): hour h is day[h mod 24] x scales[h // 24]."""
    return [day[h % 24] * scales[h // 24] for h in range(24 * len(scales))]


days = st.lists(st.floats(0, 1000), min_size=24, max_size=24)


@settings(max_examples=60, deadline=None)
@given(
    days,
    st.lists(st.floats(0.2, 2), min_size=10, max_size=10),
    st.lists(st.floats(0, 1), min_size=24, max_size=24),
    st.floats(0, 1),
    st.floats(8 * DAY_S, 9 * DAY_S),
    st.floats(0, 20 * HOUR),
    st.floats(60, 30 * HOUR),
    st.lists(st.floats(0, 1), max_size=20),
)
def test_a_held_job_is_woken_before_its_latest_start(
    day: list[float],
    scales: list[float],
    heat_day: list[float],
    weight: float,
    now: float,
    slack: float,
    limit: float,
    shares: list[float],
) -> None:
    # Whatever the series, the weight and what runs used: a job is held at most until the
    # guard before its latest start, and never once within the guard.
    carbon, heat = series(day, scales), series(heat_day, [1.0] * 10)
    job = pending(1, limit=limit, submit=now, latest_start_s=now + slack)
    snap = snapshot([job], sites=[site()], signals=signals(carbon, heat), now=now)
    snap = dataclasses.replace(snap, run_shares=shares)
    result = schedule(snap, SchedulerConfig(shift=ShiftConfig(heat_weight=weight)))
    if any(w.reason is WaitReason.CLEANER_HOUR for w in result.waits):
        assert slack > DEFAULT_GUARD_S
        assert result.wake_s is not None
        assert now < result.wake_s <= now + slack - DEFAULT_GUARD_S + 1e-6
    else:
        assert [s.job_id for s in result.starts] == [1]


def rows_with_slack(seed: int, n: int = 20) -> list[TraceRow]:
    import random

    rng = random.Random(seed)
    t = 8 * DAY_S
    rows = []
    for i in range(n):
        t += rng.uniform(0, 3 * HOUR)
        rows.append(TraceRow(f"j{i}", t, rng.uniform(60, 6 * HOUR), rng.choice([1, 2]),
                             slack_s=rng.choice([2 * HOUR, 12 * HOUR, 30 * HOUR])))  # fmt: skip
    return rows


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), days, st.lists(st.floats(0.2, 2), min_size=16, max_size=16))
def test_with_room_a_shifted_job_starts_within_its_slack(
    seed: int, day: list[float], scales: list[float]
) -> None:
    # A cluster with room for every job at once: shifting never starts a job before its
    # submission nor after its latest start, whatever the carbon series.
    rows = rows_with_slack(seed)
    energy = EnergySetup(carbon=HourlySeries(0.0, series(day, scales)))
    result = run_simulation(rows, nodes=6, gpus_per_node=8, energy=energy)
    assert result.energy is not None and result.energy.deadline_misses == 0
    by_id = {r.job_id: r for r in rows}
    for o in result.outcomes:
        row = by_id[o.job_id]
        assert row.submit_time_s <= o.start_s <= row.submit_time_s + (row.slack_s or 0) + 1e-6


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10_000), st.floats(1, 1000))
def test_with_a_flat_series_nothing_waits(seed: int, level: float) -> None:
    rows = rows_with_slack(seed)
    energy = EnergySetup(carbon=HourlySeries(0.0, [level] * (24 * 16)))
    result = run_simulation(rows, nodes=6, gpus_per_node=8, energy=energy)
    assert all(o.start_s == o.submit_s for o in result.outcomes)


def test_the_simulator_meters_heat_weighted_energy_and_heat_moves_jobs() -> None:
    # Flat carbon; heat wanted 18:00-21:00. One-hour jobs at 08:00 with 12 h of slack run
    # in the heat hours with a heat weight, at once without; the energy that came when
    # heat was wanted rises accordingly, and carbon stays the same (it is flat).
    hours = 16 * 24
    carbon = HourlySeries(0.0, [300.0] * hours)
    heat = HourlySeries(0.0, [1.0 if 18 <= h % 24 < 21 else 0.0 for h in range(hours)])
    rows = [TraceRow(f"j{i}", 8 * DAY_S + 8 * HOUR + i, HOUR, 1, slack_s=12 * HOUR)
            for i in range(4)]  # fmt: skip

    def replay(weight: float) -> tuple[float, float, float]:
        shift = ShiftConfig(heat_weight=weight)
        energy = EnergySetup(carbon=carbon, heat=heat, shift=shift)
        e = run_simulation(rows, nodes=1, gpus_per_node=8, energy=energy).energy
        assert e is not None and e.heat_weighted_kwh is not None and e.co2_kg is not None
        assert e.heat_weighted_kwh_immediate == pytest.approx(0.0)
        return e.energy_kwh, e.heat_weighted_kwh, e.co2_kg

    plain, weighed = replay(0.0), replay(1.0)
    assert plain[1] == pytest.approx(0.0)
    assert weighed[1] == pytest.approx(weighed[0])  # all of it in heat hours
    assert weighed[2] == pytest.approx(plain[2])


def test_a_heat_series_must_match_the_carbon_hours() -> None:
    rows = [TraceRow("j", 8 * DAY_S, HOUR, 1, slack_s=HOUR)]
    carbon = HourlySeries(0.0, [300.0] * 24 * 16)
    with pytest.raises(ValueError, match="heat-demand series must cover"):
        run_simulation(rows, 1, 8, energy=EnergySetup(carbon=carbon,
                                                      heat=HourlySeries(0.0, [0.5] * 24)))  # fmt: skip
    with pytest.raises(ValueError, match="needs a carbon series"):
        run_simulation(rows, 1, 8, energy=EnergySetup(heat=HourlySeries(0.0, [0.5] * 24)))
