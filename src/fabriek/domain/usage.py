"""Usage rollups: GPU-hours, energy, carbon, water and heat, summed by any level a user, a
hub or a province asks about, per hour, month or year. Pure: the service reads the hourly
energy records and hands them here."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

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


@dataclass
class _Sum:
    """Running totals of one group and period, in the units of `Footprint`'s fields (bare
    floats inside this loop only: adding typed quantities allocates one object per add)."""

    gpu_seconds: float = 0.0
    it_kwh: float = 0.0
    facility_kwh: float = 0.0
    kg_co2e: float = 0.0
    kg_co2e_market: float = 0.0
    litres: float = 0.0
    heat_kwh: float = 0.0
    unknown_kwh: float = 0.0

    def add(self, hour: Footprint, gpu_seconds: float) -> None:
        self.gpu_seconds += gpu_seconds
        self.it_kwh += hour.it.value
        self.facility_kwh += hour.facility.value
        self.litres += hour.water.value
        self.heat_kwh += hour.heat_reused.value
        if hour.carbon is None:
            self.unknown_kwh += hour.facility.value
        else:
            self.kg_co2e += hour.carbon.value
        if hour.carbon_market is not None:
            self.kg_co2e_market += hour.carbon_market.value


def hour_footprint(record: EnergyHour) -> Footprint:
    """The footprint of one record: its IT energy through `domain.energy.footprint` with the
    site's factors and the hour's grid intensity."""
    site = SiteFactors(
        pue=record.pue,
        wue_l_per_kwh=record.wue_l_per_kwh,
        heat_reuse_share=record.heat_reuse_share,
        renewable_share=record.renewable_share,
        residual_mix_g_per_kwh=record.residual_mix_g_per_kwh,
    )
    return footprint(KilowattHours(record.it_kwh), site, record.g_per_kwh)


def roll_up(records: Iterable[EnergyHour], by: GroupBy, step: Step) -> list[UsageLine]:
    """Sum the footprints of the records (`domain.energy.footprint`: facility energy is IT
    energy × PUE, carbon is facility energy × the hour's grid intensity, market-based the
    covered share at zero and the rest at the residual mix, water is IT energy × WUE, heat
    reused is facility energy × the declared share) per group and period. Hours without a
    grid intensity are counted apart, never as zero carbon. Sorted by period, then group."""
    sums: dict[tuple[str, str], _Sum] = defaultdict(_Sum)
    sources: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in records:
        key = (period_of(r.hour, step), group_of(r, by))
        sums[key].add(hour_footprint(r), r.gpu_seconds)
        sources[key].add(r.source)
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
