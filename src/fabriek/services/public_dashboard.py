"""The public dashboard's figures: the factory's use by province, AI hub, sector and month,
for anyone, without sign-in. Aggregates only: every figure shown covers at least three
organisations (`domain.disclosure`); smaller groups are merged first.

Hubs here are regions: an organisation counts for the hub that serves its province
(`domain.geography.HUBS`), so that each hub's figure is exactly the sum of its provinces'
and the two tables cannot be subtracted from each other to single anyone out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from fabriek.domain.disclosure import (
    MINIMUM_ORGANISATIONS,
    Group,
    Published,
    Totals,
    merge_small_groups,
    merge_within,
)
from fabriek.domain.geography import HUBS, Province, hub_for_province
from fabriek.domain.identity.organisations import SECTOR_OF, OrganisationKind, Sector
from fabriek.domain.usage import EnergyHour, GroupBy, Step, UsageLine, group_of, period_of, roll_up
from fabriek.services.energy.usage import partner_carbon, share
from fabriek.store.tables import (
    GridIntensityRow,
    JobEnergyRow,
    JobRow,
    OrganisationRow,
    PartnerJobRow,
    ProjectRow,
    SiteRow,
)

OUTSIDE = "outside"  # a province the reference data does not know: no hub region


@dataclass(frozen=True)
class Dashboard:
    """What the public dashboard shows for one period [start, end)."""

    start: datetime
    end: datetime
    months: list[str]
    organisations: int
    total: Totals | None  # None: too few organisations in the period to show anything
    by_month: list[Published]  # months alone or merged, in time order; idle months absent
    by_province: list[Published]
    by_hub: list[Published]
    by_sector: list[Published]
    partners: list[PartnerMonth] = field(default_factory=list)  # empty: no partner work


@dataclass(frozen=True)
class PartnerMonth:
    """Capacity exchanged with partner factories in one month, in GPU-hours: `given` the
    jobs this factory ran for partners, `received` this factory's jobs that ran at partner
    sites (None: fewer organisations than the disclosure minimum sent jobs abroad that
    month, so the figure would single them out)."""

    month: str
    given: float
    received: float | None


def last_twelve_months(now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the twelve calendar months up to and including `now`'s."""
    months_back = now.year * 12 + now.month - 1 - 11
    start = datetime(months_back // 12, months_back % 12 + 1, 1, tzinfo=UTC)
    return start, now


def months_between(start: datetime, end: datetime) -> list[str]:
    """Labels (2025-03) of the calendar months [start, end) touches."""
    out: list[str] = []
    y, m = start.year, start.month
    while datetime(y, m, 1, tzinfo=UTC) < end:
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def _totals(line: UsageLine) -> Totals:
    return Totals(
        gpu_hours=line.gpu_hours,
        kwh=line.kwh_facility,
        kg_co2e=line.kg_co2e,
        litres_water=line.litres_water,
        kwh_heat_reused=line.kwh_heat_reused,
    )


def _groups(records: list[EnergyHour], by: GroupBy, step: Step) -> dict[str, Group]:
    """Usage per group (per period when stepped), with the organisations behind each."""
    organisations: dict[str, set[str]] = defaultdict(set)
    for r in records:
        key = period_of(r.hour, step) if step is not Step.TOTAL else group_of(r, by)
        organisations[key].add(r.organisation)
    return {
        key: Group(key, frozenset(organisations[key]), _totals(line))
        for line in roll_up(records, by, step)
        for key in [line.period if step is not Step.TOTAL else line.group]
    }


def _combine(key: str, parts: Iterable[Group]) -> Group:
    totals, organisations = Totals(), frozenset[str]()
    for g in parts:
        totals, organisations = totals + g.totals, organisations | g.organisations
    return Group(key, organisations, totals)


def _hub_region(province: str) -> str:
    try:
        return hub_for_province(Province(province)).value
    except ValueError:
        return OUTSIDE


def _sector(kind: str) -> str:
    try:
        return SECTOR_OF[OrganisationKind(kind)].value
    except ValueError:
        return kind


def _month(session: Session, column: Any) -> Any:
    """SQL for the calendar month (2025-03, UTC) of a timestamp column."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM")
    return func.strftime("%Y-%m", column)  # SQLite keeps UTC times as text


def monthly_records(session: Session, start: datetime, end: datetime) -> list[EnergyHour]:
    """The hourly records of [start, end) summed in the database per month, organisation
    and site: one record per group with the intensity-weighted mean carbon factor, and one
    for its energy in hours without a known intensity. Every factor a rollup applies is
    the site's (constant) or that mean, so rolling these up gives what rolling up the
    hourly records gives, from hundreds of rows instead of tens of thousands. At a partner
    factory's site the sums are also per job, so that a job whose partner reported its
    carbon counts that figure (`services.energy.usage.partner_carbon`)."""
    sites = {s.id: s for s in session.scalars(select(SiteRow))}
    partner_sites = [i for i, s in sites.items() if s.engine == "partner"]
    rows = [(*r, None) for r in _monthly_sums(session, start, end, partner_sites, False)]
    rows += _monthly_sums(session, start, end, partner_sites, True)
    reported = partner_carbon(session, {r[-1] for r in rows if r[-1] is not None})
    out: list[EnergyHour] = []
    for label, org, kind, hub, province, site_id, gpu_s, kwh_known, kwh_g, kwh_unknown, job in rows:
        site = sites[site_id]
        first = datetime(int(label[:4]), int(label[5:7]), 1, tzinfo=UTC)
        common = {
            "hour": first, "job_id": 0, "user": "", "project": "", "organisation": org,
            "sector": kind, "hub": hub, "province": province, "site": site.name,
            "pue": site.pue or 1.0, "wue_l_per_kwh": site.wue_l_per_kwh or 0.0,
            "heat_reuse_share": site.heat_reuse_share or 0.0, "source": "ledger",
            "renewable_share": site.renewable_share or 0.0,
            "residual_mix_g_per_kwh": site.residual_mix_g_per_kwh,
        }  # fmt: skip
        known_kwh, unknown_kwh = float(kwh_known or 0.0), float(kwh_unknown or 0.0)
        figure = reported.get(job) if job is not None else None
        if figure is not None:
            kwh = known_kwh + unknown_kwh
            out.append(EnergyHour(**common, gpu_seconds=float(gpu_s or 0.0), it_kwh=kwh,
                                  g_per_kwh=None,
                                  reported_g_co2e=figure.g_co2e * share(kwh, figure.it_kwh)))  # fmt: skip
            continue
        mean_g = float(kwh_g or 0.0) / known_kwh if known_kwh > 0 else 0.0
        out.append(EnergyHour(**common, gpu_seconds=float(gpu_s or 0.0), it_kwh=known_kwh,
                              g_per_kwh=mean_g))  # fmt: skip
        if unknown_kwh > 0:
            out.append(EnergyHour(**common, gpu_seconds=0.0, it_kwh=unknown_kwh,
                                  g_per_kwh=None))  # fmt: skip
    return out


def _monthly_sums(
    session: Session, start: datetime, end: datetime, partner_sites: list[int], partner: bool
) -> list[Any]:
    """Energy per month, organisation and site: at this factory's own sites (`partner`
    False), or at partner factories' sites, then also per job (its id last)."""
    it = JobEnergyRow.gpu_kwh + JobEnergyRow.cpu_kwh
    month = _month(session, JobEnergyRow.hour)
    known = GridIntensityRow.g_per_kwh.is_not(None)
    at = JobEnergyRow.site_id.in_(partner_sites)
    extra = [JobEnergyRow.job_id] if partner else []
    rows = session.execute(
        select(
            month, OrganisationRow.name, OrganisationRow.kind, OrganisationRow.hub,
            OrganisationRow.province, JobEnergyRow.site_id, func.sum(JobEnergyRow.gpu_seconds),
            func.sum(case((known, it), else_=0.0)),
            func.sum(case((known, it * GridIntensityRow.g_per_kwh), else_=0.0)),
            func.sum(case((known, 0.0), else_=it)),
            *extra,
        )
        .join(JobRow, JobRow.id == JobEnergyRow.job_id)
        .join(ProjectRow, ProjectRow.id == JobRow.project_id)
        .join(OrganisationRow, OrganisationRow.id == ProjectRow.organisation_id)
        .join(SiteRow, SiteRow.id == JobEnergyRow.site_id)
        .outerjoin(
            GridIntensityRow,
            and_(GridIntensityRow.zone == SiteRow.grid_zone,
                 GridIntensityRow.hour == JobEnergyRow.hour),
        )
        .where(JobEnergyRow.hour >= start, JobEnergyRow.hour < end,
               at if partner else ~at)
        .group_by(month, OrganisationRow.id, JobEnergyRow.site_id, *extra)
    ).all()  # fmt: skip
    return list(rows)


def public_dashboard(session: Session, start: datetime, end: datetime) -> Dashboard:
    """The factory's use in [start, end), with small groups merged (see the module)."""
    records = monthly_records(session, start, end)
    everyone = frozenset(r.organisation for r in records)
    months = months_between(start, end)
    partners = partner_capacity(session, start, end)
    if len(everyone) < 3:
        return Dashboard(start, end, months, len(everyone), None, [], [], [], [], partners)
    provinces = _groups(records, GroupBy.PROVINCE, Step.TOTAL)
    regions: dict[str, list[Group]] = defaultdict(list)
    for g in provinces.values():
        regions[_hub_region(g.key)].append(g)
    hub_order = [h.value for h in HUBS] + [OUTSIDE]
    hubs = merge_small_groups(_combine(h, regions[h]) for h in hub_order if h in regions)
    province_order = {p.value: i for i, p in enumerate(Province)}
    by_province = merge_within(
        sorted(provinces.values(), key=lambda g: province_order.get(g.key, len(province_order))),
        _hub_region,
        hubs,
    )
    kinds = _groups(records, GroupBy.SECTOR, Step.TOTAL)
    sectors: dict[str, list[Group]] = defaultdict(list)
    for g in kinds.values():
        sectors[_sector(g.key)].append(g)
    sector_order = [s.value for s in Sector] + sorted(set(sectors) - {s.value for s in Sector})
    by_sector = merge_small_groups(_combine(s, sectors[s]) for s in sector_order if s in sectors)
    monthly = _groups(records, GroupBy.FACTORY, Step.MONTH)
    by_month = merge_small_groups(monthly[m] for m in months if m in monthly)
    total = _combine("factory", provinces.values()).totals
    return Dashboard(
        start, end, months, len(everyone), total, sorted(by_month, key=lambda p: p.keys[0]),
        by_province, hubs, by_sector, partners,
    )  # fmt: skip


def partner_capacity(session: Session, start: datetime, end: datetime) -> list[PartnerMonth]:
    """GPU-hours given to and received from partner factories per month of [start, end),
    from the hourly records: given, those of the jobs partners placed here (`partner_jobs`);
    received, those of this factory's jobs at its partner sites. Months with neither are
    left out."""
    month = _month(session, JobEnergyRow.hour)
    in_period = (JobEnergyRow.hour >= start, JobEnergyRow.hour < end)
    given: dict[str, float] = {
        str(label): float(gpu_s or 0.0)
        for label, gpu_s in session.execute(
            select(month, func.sum(JobEnergyRow.gpu_seconds))
            .join(PartnerJobRow, PartnerJobRow.job_id == JobEnergyRow.job_id)
            .where(*in_period)
            .group_by(month)
        )
    }
    received: dict[str, float] = defaultdict(float)
    senders: dict[str, set[int]] = defaultdict(set)
    for label, org, gpu_s in session.execute(
        select(month, ProjectRow.organisation_id, func.sum(JobEnergyRow.gpu_seconds))
        .join(SiteRow, SiteRow.id == JobEnergyRow.site_id)
        .join(JobRow, JobRow.id == JobEnergyRow.job_id)
        .join(ProjectRow, ProjectRow.id == JobRow.project_id)
        .where(SiteRow.engine == "partner", *in_period)
        .group_by(month, ProjectRow.organisation_id)
    ):
        received[label] += float(gpu_s or 0.0)
        senders[label].add(org)
    return [
        PartnerMonth(
            m,
            round(given.get(m, 0.0) / 3600, 3),
            round(received[m] / 3600, 3) if len(senders[m]) >= MINIMUM_ORGANISATIONS else None,
        )
        for m in months_between(start, end)
        if given.get(m) or received.get(m)
    ]
