"""Energy, water, carbon and heat formulas (domain/energy.py): hand values and properties."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from itertools import accumulate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fabriek.domain.energy import (
    DEFAULT_UTILISATION,
    MJ_PER_KWH,
    UJ_PER_KWH,
    CounterReading,
    Figure,
    Source,
    Unit,
    carbon_at,
    counter_delta,
    counter_total,
    cpu_energy_rapl,
    cpu_power_model,
    facility_energy,
    gpu_energy_nvml,
    gpu_power_model,
    hour_shares,
    kwh,
    market_carbon_at,
    modelled_energy,
    site_pue,
    split_by_hour,
    water_litres,
)
from fabriek.domain.gpus import GPU_TYPES
from fabriek.domain.units import KgCO2e, KilowattHours

T0 = datetime(2025, 3, 1, tzinfo=UTC)
increments = st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=40)
times = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2026, 1, 1), timezones=st.just(UTC)
)
durations = st.floats(min_value=0, max_value=5 * 86400, allow_nan=False)


def it(value: float) -> Figure:
    return kwh(value, Source.MEASURED_NVML, "test")


# --- Counters -------------------------------------------------------------------------------


def test_counter_by_hand() -> None:
    assert counter_delta(100, 250) == 150
    assert counter_delta(900, 40) == 40  # NVML reset: count from the new value
    assert counter_delta(900, 40, wrap_at=1000) == 140  # RAPL wrap: 100 to the top, then 40
    assert counter_total([10, 20, 5, 15]) == 10 + 5 + 10


@given(st.integers(min_value=0, max_value=10**9), increments)
def test_monotone_counter_total_is_sum_of_increments(start: int, steps: list[int]) -> None:
    readings = list(accumulate(steps, initial=start))
    assert counter_total(readings) == sum(steps) == readings[-1] - readings[0]


@given(st.integers(0, 10**12), st.integers(0, 10**12), st.one_of(st.none(), st.integers(1, 10**12)))
def test_counter_delta_is_never_negative(a: int, b: int, wrap: int | None) -> None:
    assert counter_delta(a, b, wrap) >= 0


@given(increments, increments, st.integers(0, 10**9))
def test_reset_counts_from_the_new_value(before: list[int], after: list[int], base: int) -> None:
    first = list(accumulate(before, initial=base + sum(after) + 1))  # above every later value
    second = list(accumulate(after))  # starts again near 0 after the reset
    total = counter_total(first + second)
    assert total == (first[-1] - first[0]) + second[0] + (second[-1] - second[0])
    assert total >= first[-1] - first[0]


@given(
    st.integers(min_value=1000, max_value=2**32),
    st.data(),
)
def test_rapl_wraparound_recovers_every_increment(wrap: int, data: st.DataObject) -> None:
    steps = data.draw(st.lists(st.integers(0, wrap - 1), min_size=1, max_size=30))
    start = data.draw(st.integers(0, wrap - 1))
    readings = [v % wrap for v in accumulate(steps, initial=start)]
    assert counter_total(readings, wrap_at=wrap) == sum(steps)


def test_nvml_counts_only_the_allocated_gpus_in_time_order() -> None:
    mj = int(MJ_PER_KWH)
    rs = [
        CounterReading("gpu-1", T0 + timedelta(seconds=60), 3 * mj),  # out of order on purpose
        CounterReading("gpu-0", T0, 0),
        CounterReading("gpu-1", T0, 1 * mj),
        CounterReading("gpu-0", T0 + timedelta(seconds=60), 2 * mj),
        CounterReading("gpu-2", T0, 0),  # another job's GPU on the same node
        CounterReading("gpu-2", T0 + timedelta(seconds=60), 50 * mj),
    ]
    fig = gpu_energy_nvml(rs, ["gpu-0", "gpu-1"])
    assert fig.value == pytest.approx(4.0)
    assert (fig.unit, fig.source) == (Unit.KWH, Source.MEASURED_NVML)


def test_rapl_energy_in_kwh() -> None:
    wrap = 262_143_328_850  # a typical max_energy_range_uj (about 0.073 kWh)
    centi = int(UJ_PER_KWH / 100)  # 0.01 kWh
    rs = [
        CounterReading("pkg0", T0, wrap - centi),
        CounterReading("pkg0", T0 + timedelta(minutes=1), centi),
    ]
    fig = cpu_energy_rapl(rs, wrap)
    assert fig.value == pytest.approx(0.02)
    assert fig.source is Source.MEASURED_RAPL


# --- Power models ---------------------------------------------------------------------------


def test_power_model_by_hand() -> None:
    h100 = gpu_power_model("H100")
    assert (h100.idle_w, h100.full_w) == (70.0, 700.0)
    assert h100.power_w(0.0) == 70.0 and h100.power_w(1.0) == 700.0
    assert h100.power_w() == pytest.approx(70 + 630 * DEFAULT_UTILISATION)
    # 8 H100 for one hour at full power: 5.6 kWh
    fig = modelled_energy(h100, 8, 3600, utilisation=1.0)
    assert fig.value == pytest.approx(5.6)
    assert fig.source is Source.MODELLED_POWER_MODEL and "reported" in fig.method
    assert "default" in modelled_energy(h100, 1, 60).method
    with pytest.raises(ValueError, match="no power model"):
        gpu_power_model("tpu-v5")


@given(
    st.sampled_from(sorted(GPU_TYPES)),
    st.integers(0, 1024),
    durations,
    durations,
    st.one_of(st.none(), st.floats(-1, 2, allow_nan=False)),
)
def test_modelled_energy_is_non_negative_and_additive(
    code: str, devices: int, a: float, b: float, u: float | None
) -> None:
    model = gpu_power_model(code)
    whole = modelled_energy(model, devices, a + b, u).value
    parts = (
        modelled_energy(model, devices, a, u).value + modelled_energy(model, devices, b, u).value
    )
    assert whole >= 0
    assert math.isclose(whole, parts, rel_tol=1e-9, abs_tol=1e-9)
    assert model.idle_w <= model.power_w(u) <= model.full_w


@given(st.integers(1, 512), st.floats(0, 1))
def test_cpu_model_grows_with_cores(cores: int, u: float) -> None:
    assert cpu_power_model(cores).power_w(u) <= cpu_power_model(cores + 1).power_w(u)


# --- Hours ----------------------------------------------------------------------------------


def test_hour_split_by_hand() -> None:
    start = datetime(2025, 3, 1, 10, 30, tzinfo=UTC)
    shares = hour_shares(start, start + timedelta(hours=2))
    assert shares == [
        (datetime(2025, 3, 1, 10, tzinfo=UTC), 1800.0),
        (datetime(2025, 3, 1, 11, tzinfo=UTC), 3600.0),
        (datetime(2025, 3, 1, 12, tzinfo=UTC), 1800.0),
    ]
    split = split_by_hour(it(4.0), start, start + timedelta(hours=2))
    assert [f.value for _, f in split] == [1.0, 2.0, 1.0]
    assert hour_shares(start, start) == [] and split_by_hour(it(1), start, start) == []
    with pytest.raises(ValueError, match="timezone-aware"):
        hour_shares(datetime(2025, 1, 1), datetime(2025, 1, 2))


@given(times, durations, st.floats(0, 1e6, allow_nan=False))
def test_hour_split_sums_to_the_whole(start: datetime, seconds: float, energy: float) -> None:
    end = start + timedelta(seconds=seconds)
    shares = hour_shares(start, end)
    assert math.isclose(sum(s for _, s in shares), (end - start).total_seconds(), abs_tol=1e-6)
    assert all(0 < s <= 3600 for _, s in shares)
    hours = [h for h, _ in shares]
    assert hours == sorted(set(hours)) and all(h.minute == h.second == 0 for h in hours)
    split = split_by_hour(it(energy), start, end)
    if shares:
        assert math.isclose(sum(f.value for _, f in split), energy, rel_tol=1e-9, abs_tol=1e-9)
        assert all(f.value >= 0 and f.source is Source.MEASURED_NVML for _, f in split)


@given(times, durations, durations)
def test_hour_split_is_additive_over_split_intervals(start: datetime, a: float, b: float) -> None:
    mid, end = start + timedelta(seconds=a), start + timedelta(seconds=a + b)
    whole: dict[datetime, float] = dict(hour_shares(start, end))
    parts: dict[datetime, float] = {}
    for h, s in hour_shares(start, mid) + hour_shares(mid, end):
        parts[h] = parts.get(h, 0.0) + s
    assert whole.keys() == parts.keys()
    assert all(math.isclose(whole[h], parts[h], abs_tol=1e-6) for h in whole)


# --- Facility, water, heat -------------------------------------------------------------------


def test_pue_measured_wins_over_declared_and_below_one_is_refused() -> None:
    assert site_pue(1.3).source is Source.DECLARED_PUE
    measured = site_pue(1.3, measured_facility_kwh=1200, measured_it_kwh=1000)
    assert (measured.value, measured.source) == (1.2, Source.MEASURED_FACILITY)
    with pytest.raises(ValueError, match="< 1"):
        site_pue(None, measured_facility_kwh=900, measured_it_kwh=1000)
    with pytest.raises(ValueError, match="neither"):
        site_pue(None)
    fac = facility_energy(it(1000), site_pue(1.25))
    assert (fac.value, fac.source) == (1250.0, Source.DECLARED_PUE)


@given(st.floats(0, 1e9), st.floats(0, 1e9), st.floats(1, 3), st.floats(0, 10))
def test_facility_and_water_are_non_negative_and_additive(
    a: float, b: float, pue: float, wue: float
) -> None:
    p = site_pue(pue)
    whole = facility_energy(it(a + b), p).value
    assert whole >= a + b - 1e-6 * (a + b)  # PUE >= 1: the facility uses at least the IT energy
    parts = facility_energy(it(a), p).value + facility_energy(it(b), p).value
    assert math.isclose(whole, parts, rel_tol=1e-9, abs_tol=1e-6)
    w = water_litres(it(a + b), wue)
    assert w.unit is Unit.LITRE and w.value >= 0
    assert math.isclose(
        w.value,
        water_litres(it(a), wue).value + water_litres(it(b), wue).value,
        rel_tol=1e-9,
        abs_tol=1e-6,
    )


def test_water_and_units_are_checked() -> None:
    assert water_litres(it(1000), 0.4).value == pytest.approx(400)
    with pytest.raises(ValueError, match="kWh"):
        water_litres(Figure(1, Unit.LITRE, Source.DECLARED_WUE, ""), 0.4)
    with pytest.raises(ValueError, match="non-negative"):
        water_litres(it(1), -1)


# --- Carbon ---------------------------------------------------------------------------------


def test_location_based_carbon_by_hand() -> None:
    kg = carbon_at(KilowattHours(10), 300.0) + carbon_at(KilowattHours(20), 100.0)
    assert isinstance(kg, KgCO2e) and kg.value == pytest.approx(10 * 0.3 + 20 * 0.1)


@given(times, durations, st.floats(0, 1e6), st.floats(0, 1000))
def test_location_based_carbon_is_additive_over_hours(
    start: datetime, seconds: float, energy: float, g_per_kwh: float
) -> None:
    """An interval's energy shared out over its clock hours has, at one intensity, the carbon
    of the whole: splitting by hour never adds or loses any."""
    split = split_by_hour(it(energy), start, start + timedelta(seconds=seconds))
    pieces = math.fsum(carbon_at(KilowattHours(f.value), g_per_kwh).value for _, f in split)
    whole = carbon_at(KilowattHours(energy), g_per_kwh).value if split else 0.0
    assert pieces >= 0 and math.isclose(pieces, whole, rel_tol=1e-9, abs_tol=1e-9)


def _market(kwh_: float, share: float, residual: float | None, location: float | None) -> float:
    kg = market_carbon_at(KilowattHours(kwh_), share, residual, location)
    assert kg is not None
    return kg.value


def test_market_based_by_hand() -> None:
    share = 0.8  # e.g. 600 kWh of guarantees of origin and 200 kWh of PPA over 1,000 kWh
    assert _market(1000, share, 500, 300) == pytest.approx(200 * 0.5)  # uncovered at residual
    # No residual mix declared: the location-based factor stands in (Scope 2's hierarchy).
    assert _market(1000, share, None, 300) == pytest.approx(200 * 0.3)
    assert _market(1000, 5.0, 500, 300) == 0.0  # no double claiming
    assert market_carbon_at(KilowattHours(1000), share, None, None) is None  # unknown, not 0


@given(st.floats(0, 1e7), st.floats(0, 1), st.floats(0, 1), st.floats(0, 2000), st.floats(0, 2000))
def test_market_based_carbon_falls_as_coverage_grows(
    energy: float, s1: float, s2: float, residual: float, location: float
) -> None:
    lo, hi = sorted((s1, s2))
    a = _market(energy, lo, residual, location)
    b = _market(energy, hi, residual, location)
    assert 0 <= b <= a + 1e-9
    assert _market(energy, 1.0, residual, location) == 0.0
