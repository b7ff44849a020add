"""Usage rollups: GPU-hours, energy, carbon, water and heat, summed by any level a user, a
hub or a province asks about, per hour, month or year. Pure: the service reads the hourly
energy records and hands them here."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from operator import attrgetter

from pydantic import BaseModel, Field

from fabriek.domain.energy import Footprint, SiteFactors, footprint
from fabriek.domain.units import KilowattHours


class GroupBy(StrEnum):
    """The levels usage is summed over."""

    JOB = "job"
    USER = "user"
    PROJECT = "project"
    ORGANISATION = "organisation"
    SECTOR = "sector"
    HUB = "hub"
    PROVINCE = "province"
    SITE = "site"
    FACTORY = "factory"


class Step(StrEnum):
    """How finely time is cut: each hour, month or year, or the whole period at once."""

    HOUR = "hour"
    MONTH = "month"
    YEAR = "year"
    TOTAL = "total"


@dataclass(frozen=True, slots=True)
class EnergyHour:
    """One job's IT energy in one clock hour, with everything a rollup may group by and the
    site's factors for that hour. `g_per_kwh` None: no grid intensity is known for it."""

    hour: datetime
    job_id: int
    user: str
    project: str
    organisation: str
    sector: str
    hub: str
    province: str
    site: str
    gpu_seconds: float
    it_kwh: float
    pue: float
    wue_l_per_kwh: float
    heat_reuse_share: float
    g_per_kwh: float | None
    source: str
    renewable_share: float = 0.0
    residual_mix_g_per_kwh: float | None = None
    # The carbon (g CO2e) the site that ran it reported for this record: a partner factory
    # reports a job's carbon at its own grid's intensity, which then stands for both the
    # location- and the market-based figure (the partner reports no market-based one).
    reported_g_co2e: float | None = None


class UsageLine(BaseModel):
    """One group in one period."""

    group: str = Field(description="the group's name (a project, a province, ...)")
    period: str = Field(description="2025-03-01T13, 2025-03, 2025 or 'total'")
    gpu_hours: float
    kwh_it: float = Field(description="IT energy (GPUs and CPUs), kWh")
    kwh_facility: float = Field(description="IT energy × PUE, kWh")
    kg_co2e: float = Field(description="location-based: facility kWh × hourly grid intensity")
    kg_co2e_market: float = Field(
        description="market-based: the share the site's renewable instruments cover at 0, the "
        "rest at its residual mix (the hourly grid intensity where it declares none)"
    )
    litres_water: float = Field(description="IT energy × WUE, L")
    kwh_heat_reused: float = Field(description="facility energy × declared heat-reuse share")
    kwh_without_intensity: float = Field(
        description="facility kWh in hours with no grid intensity known (not in kg_co2e)"
    )
    sources: list[str] = Field(description="how the energy figures were obtained")


def period_of(moment: datetime, step: Step) -> str:
    """The label of the period `moment` falls in."""
    if step is Step.HOUR:
        return moment.strftime("%Y-%m-%dT%H")
    if step is Step.MONTH:
        return moment.strftime("%Y-%m")
    if step is Step.YEAR:
        return moment.strftime("%Y")
    return "total"


def group_of(record: EnergyHour, by: GroupBy) -> str:
    """The name of the group a record belongs to."""
    if by is GroupBy.FACTORY:
        return "factory"
    if by is GroupBy.JOB:
        return str(record.job_id)
    value: str = getattr(record, by.value)
    return value


# A site's footprint per kWh of IT energy, as the floats of `Footprint`'s fields after `it`:
# facility kWh, litres, heat kWh, kg CO2e, market kg CO2e (None: not known).
_Rates = tuple[float, float, float, float | None, float | None]

# A site's factors in the order of `SiteFactors`' fields.
_Factors = tuple[float, float, float, float, float | None]


def _rates(fp: Footprint) -> _Rates:
    carbon = None if fp.carbon is None else fp.carbon.value
    market = None if fp.carbon_market is None else fp.carbon_market.value
    return (fp.facility.value, fp.water.value, fp.heat_reused.value, carbon, market)


@dataclass(frozen=True, slots=True)
class _PerKwh:
    """What 1 kWh of IT energy at a site comes to by `domain.energy.footprint`: with no grid
    intensity known, at 0 g/kWh, and how much more for each g/kWh. The formulas are linear in
    the energy and affine in the intensity (tests/test_usage_rollup.py holds them to that), so
    a group's footprint is these rates times its summed kWh and kWh × g/kWh: the typed
    formulas run once per site, not once per record."""

    unknown: _Rates
    at_zero: _Rates
    per_g: _Rates

    @classmethod
    def of(cls, site: SiteFactors) -> _PerKwh:
        one = KilowattHours(1.0)
        zero, at_one = _rates(footprint(one, site, 0.0)), _rates(footprint(one, site, 1.0))
        return cls(_rates(footprint(one, site, None)), zero, _less(at_one, zero))


def _less(a: _Rates, b: _Rates) -> _Rates:
    def minus(x: float | None, y: float | None) -> float | None:
        return None if x is None or y is None else x - y

    return (a[0] - b[0], a[1] - b[1], a[2] - b[2], minus(a[3], b[3]), minus(a[4], b[4]))


@dataclass(slots=True)
class _Energy:
    """The IT energy of one group and period at one site, in bare floats (the hot loop): the
    kWh without a grid intensity, the kWh with one, and the sum of those kWh × g/kWh; with
    the GPU-seconds and the sources of the energy figures."""

    sources: set[str]
    unknown_kwh: float = 0.0
    known_kwh: float = 0.0
    known_kwh_g: float = 0.0
    gpu_seconds: float = 0.0
    reported_kwh: float = 0.0
    reported_g: float = 0.0


def _namer(by: GroupBy) -> Callable[[EnergyHour], str]:
    """`group_of` for one level, decided once rather than per record."""
    if by is GroupBy.FACTORY or by is GroupBy.JOB:
        return lambda record: group_of(record, by)
    return attrgetter(by.value)


@dataclass
class _Sum:
    """Running totals of one group and period, in the units of `Footprint`'s fields."""

    gpu_seconds: float = 0.0
    it_kwh: float = 0.0
    facility_kwh: float = 0.0
    kg_co2e: float = 0.0
    kg_co2e_market: float = 0.0
    litres: float = 0.0
    heat_kwh: float = 0.0
    unknown_kwh: float = 0.0

    def add(
        self, kwh: float, rates: _Rates, kwh_g: float = 0.0, per_g: _Rates | None = None
    ) -> None:
        """`kwh` of IT energy at `rates`, plus `kwh_g` (kWh × g/kWh) at `per_g`."""
        facility, litres, heat, carbon, market = rates
        g_facility, g_litres, g_heat, g_carbon, g_market = per_g or (0.0, 0.0, 0.0, 0.0, 0.0)
        self.it_kwh += kwh
        self.facility_kwh += kwh * facility + kwh_g * g_facility
        self.litres += kwh * litres + kwh_g * g_litres
        self.heat_kwh += kwh * heat + kwh_g * g_heat
        if carbon is None:
            self.unknown_kwh += kwh * facility
        else:
            self.kg_co2e += kwh * carbon + kwh_g * (g_carbon or 0.0)
        if market is not None:
            self.kg_co2e_market += kwh * market + kwh_g * (g_market or 0.0)


def hour_footprint(record: EnergyHour) -> Footprint:
    """The footprint of one record: its IT energy through `domain.energy.footprint` with the
    site's factors and the hour's grid intensity."""
    return footprint(KilowattHours(record.it_kwh), _site(record), record.g_per_kwh)


def _site(record: EnergyHour) -> SiteFactors:
    return SiteFactors(
        pue=record.pue,
        wue_l_per_kwh=record.wue_l_per_kwh,
        heat_reuse_share=record.heat_reuse_share,
        renewable_share=record.renewable_share,
        residual_mix_g_per_kwh=record.residual_mix_g_per_kwh,
    )


def roll_up(records: Iterable[EnergyHour], by: GroupBy, step: Step) -> list[UsageLine]:
    """Sum the footprints of the records (`domain.energy.footprint`: facility energy is IT
    energy × PUE, carbon is facility energy × the hour's grid intensity, market-based the
    covered share at zero and the rest at the residual mix, water is IT energy × WUE, heat
    reused is facility energy × the declared share) per group and period. Hours without a
    grid intensity are counted apart, never as zero carbon. A record with a carbon figure
    reported by the site that ran it (a partner factory) counts that figure instead of the
    grid intensity. Sorted by period, then group.

    The records' energy is first summed per group, period and site (bare floats, the hot
    loop), then turned into figures at each site's rates per kWh (`_PerKwh`), which come
    from the typed formulas once per site."""
    # Keyed by period, group and the site's factors in one flat tuple (cheap to hash); a
    # site's rates are made once per distinct set of factors, after the loop.
    energy: dict[tuple[str, str, float, float, float, float, float | None], _Energy] = {}
    periods: dict[datetime, str] = {}  # a period's label per hour: formatting is the cost
    name_of = _namer(by)
    for r in records:
        period = periods.get(r.hour)
        if period is None:
            period = periods[r.hour] = period_of(r.hour, step)
        key = (period, name_of(r), r.pue, r.wue_l_per_kwh, r.heat_reuse_share,
               r.renewable_share, r.residual_mix_g_per_kwh)  # fmt: skip
        part = energy.get(key)
        if part is None:
            part = energy[key] = _Energy(sources=set())
        if r.reported_g_co2e is not None:
            part.reported_kwh += r.it_kwh
            part.reported_g += r.reported_g_co2e
        elif r.g_per_kwh is None:
            part.unknown_kwh += r.it_kwh
        else:
            part.known_kwh += r.it_kwh
            part.known_kwh_g += r.it_kwh * r.g_per_kwh
        part.gpu_seconds += r.gpu_seconds
        part.sources.add(r.source)
    sums: dict[tuple[str, str], _Sum] = defaultdict(_Sum)
    sources: dict[tuple[str, str], set[str]] = defaultdict(set)
    rates: dict[_Factors, _PerKwh] = {}
    for key, part in energy.items():
        factors = (key[2], key[3], key[4], key[5], key[6])
        site = rates.get(factors)
        if site is None:
            site = rates[factors] = _PerKwh.of(SiteFactors(*factors))
        total = sums[key[0], key[1]]
        total.gpu_seconds += part.gpu_seconds
        sources[key[0], key[1]] |= part.sources
        if part.unknown_kwh:
            total.add(part.unknown_kwh, site.unknown)
        if part.known_kwh or part.known_kwh_g:
            total.add(part.known_kwh, site.at_zero, part.known_kwh_g, site.per_g)
        if part.reported_kwh or part.reported_g:
            # Facility energy, water and heat at the site's factors; carbon as reported.
            total.add(part.reported_kwh, (*site.at_zero[:3], 0.0, 0.0))
            total.kg_co2e += part.reported_g / 1000
            total.kg_co2e_market += part.reported_g / 1000
    return [
        UsageLine(
            group=group, period=period, gpu_hours=round(s.gpu_seconds / 3600, 6),
            kwh_it=round(s.it_kwh, 6), kwh_facility=round(s.facility_kwh, 6),
            kg_co2e=round(s.kg_co2e, 6), kg_co2e_market=round(s.kg_co2e_market, 6),
            litres_water=round(s.litres, 6), kwh_heat_reused=round(s.heat_kwh, 6),
            kwh_without_intensity=round(s.unknown_kwh, 6),
            sources=sorted(sources[(period, group)]),
        )
        for (period, group), s in sorted(sums.items())
    ]  # fmt: skip
