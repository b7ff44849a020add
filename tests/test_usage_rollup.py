"""Usage rollups (pure): every level and step sums the same totals; carbon, water and heat
follow from energy and the site's factors; hours without grid intensity are not zero carbon."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fabriek.domain.energy import (
    Figure,
    Footprint,
    SiteFactors,
    Source,
    Unit,
    carbon_at,
    facility_energy,
    footprint,
    kwh,
    market_carbon_at,
    water_litres,
)
from fabriek.domain.units import KilowattHours
from fabriek.domain.usage import EnergyHour, GroupBy, Step, hour_footprint, roll_up

START = datetime(2025, 3, 1, tzinfo=UTC)


def hour_record(
    it_kwh: float = 1.0,
    pue: float = 1.25,
    wue: float = 0.4,
    heat: float = 0.0,
    g: float | None = 300.0,
    at: datetime = START,
    renewable: float = 0.0,
    residual: float | None = None,
    **who: str,
) -> EnergyHour:
    base = {"user": "u", "project": "p", "organisation": "o", "sector": "start-up",
            "hub": "brainport", "province": "Noord-Brabant", "site": "eindhoven"}  # fmt: skip
    base.update(who)
    return EnergyHour(
        hour=at, job_id=1, gpu_seconds=3600.0, it_kwh=it_kwh, pue=pue, wue_l_per_kwh=wue,
        heat_reuse_share=heat, g_per_kwh=g, source="modelled", renewable_share=renewable,
        residual_mix_g_per_kwh=residual, **base,
    )  # fmt: skip


def test_one_hour_by_hand() -> None:
    # 2 kWh IT at PUE 1.25 is 2.5 kWh facility; at 300 g/kWh that is 0.75 kg CO2e;
    # WUE 0.4 L/kWh of IT energy gives 0.8 L; a 40 % heat-reuse share gives 1 kWh of heat.
    [line] = roll_up([hour_record(it_kwh=2.0, heat=0.4)], GroupBy.FACTORY, Step.TOTAL)
    assert line.kwh_it == 2.0 and line.kwh_facility == 2.5
    assert line.kg_co2e == pytest.approx(0.75) and line.litres_water == pytest.approx(0.8)
    assert line.kwh_heat_reused == pytest.approx(1.0) and line.gpu_hours == 1.0


def test_market_based_carbon_by_hand() -> None:
    # 2.5 kWh facility, 60 % covered by renewable instruments: 1 kWh left. At a declared
    # residual mix of 500 g/kWh that is 0.5 kg; without one, the hour's 300 g/kWh stands in.
    [declared] = roll_up(
        [hour_record(it_kwh=2.0, renewable=0.6, residual=500.0)], GroupBy.SITE, Step.TOTAL
    )
    assert declared.kg_co2e == pytest.approx(0.75)  # location-based is unchanged
    assert declared.kg_co2e_market == pytest.approx(0.5)
    [fallback] = roll_up([hour_record(it_kwh=2.0, renewable=0.6)], GroupBy.SITE, Step.TOTAL)
    assert fallback.kg_co2e_market == pytest.approx(0.3)
    [none] = roll_up([hour_record(it_kwh=2.0)], GroupBy.SITE, Step.TOTAL)
    assert none.kg_co2e_market == pytest.approx(none.kg_co2e)


def test_hours_without_intensity_are_counted_apart() -> None:
    lines = roll_up([hour_record(g=None), hour_record(g=100.0)], GroupBy.SITE, Step.TOTAL)
    assert lines[0].kg_co2e == pytest.approx(0.125)  # only the hour with an intensity
    assert lines[0].kwh_without_intensity == pytest.approx(1.25)


def test_periods_and_groups() -> None:
    records = [
        hour_record(at=START, province="Groningen"),
        hour_record(at=START + timedelta(hours=1), province="Limburg"),
        hour_record(at=START + timedelta(days=31), province="Limburg"),
    ]
    by_month = roll_up(records, GroupBy.PROVINCE, Step.MONTH)
    assert [(u.period, u.group) for u in by_month] == [
        ("2025-03", "Groningen"), ("2025-03", "Limburg"), ("2025-04", "Limburg")
    ]  # fmt: skip
    by_hour = roll_up(records, GroupBy.FACTORY, Step.HOUR)
    assert [u.period for u in by_hour] == ["2025-03-01T00", "2025-03-01T01", "2025-04-01T00"]


records = st.lists(
    st.builds(
        hour_record,
        it_kwh=st.floats(0, 100),
        pue=st.floats(1, 2),
        wue=st.floats(0, 3),
        heat=st.floats(0, 1),
        g=st.one_of(st.none(), st.floats(0, 800)),
        renewable=st.floats(0, 1),
        at=st.integers(0, 24 * 400).map(lambda h: START + timedelta(hours=h)),
        project=st.sampled_from(["a", "b", "c"]),
        province=st.sampled_from(["Groningen", "Limburg"]),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(records, st.sampled_from(list(GroupBy)), st.sampled_from(list(Step)))
def test_every_level_and_step_sums_to_the_same_totals(
    recs: list[EnergyHour], by: GroupBy, step: Step
) -> None:
    [total] = roll_up(recs, GroupBy.FACTORY, Step.TOTAL) or [None]  # type: ignore[list-item]
    lines = roll_up(recs, by, step)
    if not recs:
        assert lines == []
        return
    assert total is not None
    for field in ("kwh_it", "kwh_facility", "kg_co2e", "kg_co2e_market", "litres_water", "kwh_heat_reused",
                  "kwh_without_intensity", "gpu_hours"):  # fmt: skip
        assert sum(getattr(u, field) for u in lines) == pytest.approx(
            getattr(total, field), rel=1e-6, abs=1e-4
        )
    for u in lines:
        assert u.kwh_facility >= u.kwh_it - 1e-6  # PUE >= 1
        assert 0 <= u.kwh_heat_reused <= u.kwh_facility + 1e-6
        assert u.kwh_without_intensity <= u.kwh_facility + 1e-6
        # No residual mix declared: instruments can only lower the location-based figure.
        assert u.kg_co2e_market <= u.kg_co2e + 1e-6


def _by_the_typed_formulas(r: EnergyHour) -> dict[str, float]:
    """One record's figures from `domain.energy`'s `Figure` formulas, one at a time."""
    it = kwh(r.it_kwh, Source.LEDGER, "test")
    facility = facility_energy(it, Figure(r.pue, Unit.RATIO, Source.DECLARED_PUE, "test"))
    out = {
        "kwh_it": r.it_kwh,
        "kwh_facility": facility.value,
        "litres_water": water_litres(it, r.wue_l_per_kwh).value,
        "kwh_heat_reused": facility.value * r.heat_reuse_share,
        "kg_co2e": 0.0,
        "kg_co2e_market": 0.0,
        "kwh_without_intensity": 0.0,
    }
    energy = KilowattHours(facility.value)
    if r.g_per_kwh is None:
        out["kwh_without_intensity"] = facility.value
    else:
        out["kg_co2e"] = carbon_at(energy, r.g_per_kwh).value
    market = market_carbon_at(energy, r.renewable_share, r.residual_mix_g_per_kwh, r.g_per_kwh)
    if market is not None:
        out["kg_co2e_market"] = market.value
    return out


# A site with any factors.
_SITES = st.builds(
    SiteFactors,
    pue=st.floats(1, 2),
    wue_l_per_kwh=st.floats(0, 3),
    heat_reuse_share=st.floats(0, 1),
    renewable_share=st.floats(0, 1),
    residual_mix_g_per_kwh=st.one_of(st.none(), st.floats(0, 900)),
)


def _at_site(site: SiteFactors, it_kwh: float, g: float | None, at: datetime) -> EnergyHour:
    return hour_record(
        it_kwh=it_kwh, pue=site.pue, wue=site.wue_l_per_kwh, heat=site.heat_reuse_share, g=g,
        at=at, renewable=site.renewable_share, residual=site.residual_mix_g_per_kwh,
    )  # fmt: skip


# One hour of one job at such a site, at any hour of a year and a bit.
_RECORDS = st.builds(
    _at_site,
    _SITES,
    it_kwh=st.floats(0, 100),
    g=st.one_of(st.none(), st.floats(0, 800)),
    at=st.integers(0, 24 * 400).map(lambda h: START + timedelta(hours=h)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_RECORDS, min_size=1, max_size=30))
def test_the_rollup_is_the_typed_formulas_summed(recs: list[EnergyHour]) -> None:
    """The rollup users see (API, portal, public dashboard) and the typed formulas of
    `domain.energy` are one model: the rollup's totals are the formulas' figures summed."""
    [total] = roll_up(recs, GroupBy.FACTORY, Step.TOTAL)
    per_record = [_by_the_typed_formulas(r) for r in recs]
    for name in per_record[0]:
        expected = math.fsum(figures[name] for figures in per_record)
        assert getattr(total, name) == pytest.approx(expected, rel=1e-9, abs=1e-6), name


def _fields(fp: Footprint) -> list[float | None]:
    return [
        fp.it.value, fp.facility.value, fp.water.value, fp.heat_reused.value,
        None if fp.carbon is None else fp.carbon.value,
        None if fp.carbon_market is None else fp.carbon_market.value,
    ]  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(_SITES, st.floats(0, 100), st.floats(0, 10), st.one_of(st.none(), st.floats(0, 800)))
def test_the_footprint_is_linear_in_energy_and_affine_in_intensity(
    site: SiteFactors, it: float, k: float, g: float | None
) -> None:
    """The rollup sums energy per site before it applies the formulas (`usage._PerKwh`): that
    is only right while every formula is linear in the energy and affine in the intensity."""
    one = _fields(footprint(KilowattHours(it), site, g))
    scaled = _fields(footprint(KilowattHours(it * k), site, g))
    _assert_close(scaled, [None if v is None else v * k for v in one])
    if g is not None:
        zero = _fields(footprint(KilowattHours(it), site, 0.0))
        unit = _fields(footprint(KilowattHours(it), site, 1.0))
        _assert_close(one, [_affine(a, b, g) for a, b in zip(zero, unit, strict=True)])


def _affine(at_zero: float | None, at_one: float | None, g: float) -> float | None:
    return None if at_zero is None or at_one is None else at_zero + g * (at_one - at_zero)


def _assert_close(got: list[float | None], want: list[float | None]) -> None:
    assert [v is None for v in got] == [v is None for v in want]
    for a, b in zip(got, want, strict=True):
        if a is not None:
            assert a == pytest.approx(b, rel=1e-9, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(st.lists(_RECORDS, min_size=1, max_size=10))
def test_each_hour_of_the_rollup_is_that_hours_typed_footprint(recs: list[EnergyHour]) -> None:
    """One record per hour: each hourly line is the record's own footprint (`hour_footprint`)."""
    recs = [replace(r, hour=START + timedelta(hours=i)) for i, r in enumerate(recs)]
    lines = roll_up(recs, GroupBy.FACTORY, Step.HOUR)
    for r, line in zip(recs, lines, strict=True):
        fp = hour_footprint(r)
        assert line.kwh_facility == pytest.approx(fp.facility.value, abs=1e-6)
        assert line.litres_water == pytest.approx(fp.water.value, abs=1e-6)
        assert line.kwh_heat_reused == pytest.approx(fp.heat_reused.value, abs=1e-6)
        carbon = 0.0 if fp.carbon is None else fp.carbon.value
        market = 0.0 if fp.carbon_market is None else fp.carbon_market.value
        assert line.kg_co2e == pytest.approx(carbon, abs=1e-6)
        assert line.kg_co2e_market == pytest.approx(market, abs=1e-6)
        unknown = fp.facility.value if fp.carbon is None else 0.0
        assert line.kwh_without_intensity == pytest.approx(unknown, abs=1e-6)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(_RECORDS, min_size=1, max_size=20),
    st.lists(st.tuples(_RECORDS, st.floats(0, 5000)), min_size=1, max_size=10),
)
def test_a_partner_s_reported_carbon_stands_for_its_records(
    own: list[EnergyHour], abroad: list[tuple[EnergyHour, float]]
) -> None:
    """Records of jobs run at a partner factory count the carbon the partner reported (at
    its own grid's intensity), whatever intensity this factory has for them; their energy,
    water and heat follow the site's factors as any record's."""
    reported = [replace(r, reported_g_co2e=g) for r, g in abroad]
    [both] = roll_up([*own, *reported], GroupBy.FACTORY, Step.TOTAL)
    [alone] = roll_up(own, GroupBy.FACTORY, Step.TOTAL)
    [as_own] = roll_up([r for r, _ in abroad], GroupBy.FACTORY, Step.TOTAL)
    grams = math.fsum(g for _, g in abroad)
    close = {"rel": 1e-9, "abs": 1e-5}
    assert both.kg_co2e == pytest.approx(alone.kg_co2e + grams / 1000, **close)
    assert both.kg_co2e_market == pytest.approx(alone.kg_co2e_market + grams / 1000, **close)
    assert both.kwh_without_intensity == pytest.approx(alone.kwh_without_intensity, **close)
    for name in ("kwh_it", "kwh_facility", "litres_water", "kwh_heat_reused", "gpu_hours"):
        expected = getattr(alone, name) + getattr(as_own, name)
        assert getattr(both, name) == pytest.approx(expected, **close), name
