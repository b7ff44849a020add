"""Usage rollups from the hourly energy records: who used how many GPU-hours, kWh, kg CO2e,
litres of water and kWh of reused heat, at any level and per hour, month or year."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from fabriek.domain.errors import InvalidInput
from fabriek.domain.roles import Principal
from fabriek.domain.usage import EnergyHour, GroupBy, Step, UsageLine, roll_up
from fabriek.services.identity.projects import visible_accounts
from fabriek.store.tables import (
    GridIntensityRow,
    JobEnergyRow,
    JobRow,
    OrganisationRow,
    ProjectRow,
    SiteRow,
    UserRow,
)

# At most this many hourly records in one rollup; a longer period asks for a coarser filter.
MAX_RECORDS = 2_000_000


def period_bounds(month: str | None, year: str | None) -> tuple[datetime, datetime]:
    """[start, end) of `--month 2025-03` or `--year 2025` (UTC); the current year if neither."""
    if month is not None and year is not None:
        raise InvalidInput.on("month", "give a month or a year, not both")
    if month is not None:
        if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
            raise InvalidInput.on("month", f"{month!r} is not a month like 2025-03")
        y, m = int(month[:4]), int(month[5:])
        start = datetime(y, m, 1, tzinfo=UTC)
        end = datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=UTC)
        return start, end
    if year is not None:
        if not re.fullmatch(r"\d{4}", year):
            raise InvalidInput.on("year", f"{year!r} is not a year like 2025")
        return datetime(int(year), 1, 1, tzinfo=UTC), datetime(int(year) + 1, 1, 1, tzinfo=UTC)
    now = datetime.now(UTC)
    return datetime(now.year, 1, 1, tzinfo=UTC), datetime(now.year + 1, 1, 1, tzinfo=UTC)


def _visible(who: Principal) -> ColumnElement[bool]:
    return visible_accounts(who, JobRow.project_id)


def usage(
    session: Session,
    who: Principal,
    by: GroupBy,
    step: Step,
    start: datetime,
    end: datetime,
) -> list[UsageLine]:
    """The caller's visible usage (their projects'; their hub's for hub staff; all for admins
    and the access team) between `start` and `end`, grouped and stepped."""
    return roll_up(energy_records(session, start, end, _visible(who)), by, step)


def energy_records(
    session: Session, start: datetime, end: datetime, *where: ColumnElement[bool]
) -> list[EnergyHour]:
    """The hourly energy records between `start` and `end` (those `where` lets through),
    each with what a rollup groups by and its site's factors for the hour."""
    rows = session.execute(
        select(
            JobEnergyRow.hour, JobEnergyRow.job_id, UserRow.username, ProjectRow.name,
            OrganisationRow.name, OrganisationRow.kind, OrganisationRow.hub,
            OrganisationRow.province, SiteRow.name, JobEnergyRow.gpu_seconds,
            JobEnergyRow.gpu_kwh + JobEnergyRow.cpu_kwh, SiteRow.pue, SiteRow.wue_l_per_kwh,
            SiteRow.heat_reuse_share, GridIntensityRow.g_per_kwh, JobEnergyRow.source,
            SiteRow.renewable_share, SiteRow.residual_mix_g_per_kwh, SiteRow.engine,
        )
        .join(JobRow, JobRow.id == JobEnergyRow.job_id)
        .join(UserRow, UserRow.id == JobRow.user_id)
        .join(ProjectRow, ProjectRow.id == JobRow.project_id)
        .join(OrganisationRow, OrganisationRow.id == ProjectRow.organisation_id)
        .join(SiteRow, SiteRow.id == JobEnergyRow.site_id)
        .outerjoin(
            GridIntensityRow,
            and_(GridIntensityRow.zone == SiteRow.grid_zone,
                 GridIntensityRow.hour == JobEnergyRow.hour),
        )
        .where(JobEnergyRow.hour >= start, JobEnergyRow.hour < end, *where)
        .limit(MAX_RECORDS)
    ).all()  # fmt: skip
    reported = partner_carbon(session, {r[1] for r in rows if r[18] == "partner"})
    return [
        EnergyHour(
            hour=r[0], job_id=r[1], user=r[2], project=r[3], organisation=r[4], sector=r[5],
            hub=r[6], province=r[7], site=r[8], gpu_seconds=r[9], it_kwh=r[10],
            pue=r[11] or 1.0, wue_l_per_kwh=r[12] or 0.0, heat_reuse_share=r[13] or 0.0,
            g_per_kwh=r[14], source=r[15], renewable_share=r[16] or 0.0,
            residual_mix_g_per_kwh=r[17],
            reported_g_co2e=(
                None if r[1] not in reported
                else reported[r[1]].g_co2e * share(r[10], reported[r[1]].it_kwh)
            ),
        )
        for r in rows
    ]  # fmt: skip


@dataclass(frozen=True)
class ReportedCarbon:
    """A partner factory's carbon figure for one job (g CO2e at its own grid's intensity),
    and the job's IT energy here over all its hours, to share the figure out by."""

    g_co2e: float
    it_kwh: float


def share(kwh: float, total_kwh: float) -> float:
    """A record's share of its job's figure: its part of the job's IT energy."""
    return kwh / total_kwh if total_kwh > 0 else 0.0


def partner_carbon(session: Session, job_ids: set[int]) -> dict[int, ReportedCarbon]:
    """The carbon the partner factory reported for each of these jobs (its usage, entry
    `partner` of the job's energy readings), where it is complete: a partner that lacked its
    grid's intensity for some hours reports a partial figure, and such a job keeps this
    factory's own intensity (never a figure too low)."""
    if not job_ids:
        return {}
    figures: dict[int, float] = {}
    for job_id, readings in session.execute(
        select(JobRow.id, JobRow.energy_readings).where(JobRow.id.in_(job_ids))
    ):
        for reading in readings or []:
            usage = reading.get("partner") if isinstance(reading, dict) else None
            if (
                isinstance(usage, dict)
                and usage.get("carbon_complete")
                and isinstance(usage.get("carbon_g"), int | float)
            ):
                figures[job_id] = float(usage["carbon_g"])
    if not figures:
        return {}
    energy = session.execute(
        select(JobEnergyRow.job_id, func.sum(JobEnergyRow.gpu_kwh + JobEnergyRow.cpu_kwh))
        .where(JobEnergyRow.job_id.in_(figures))
        .group_by(JobEnergyRow.job_id)
    ).all()
    kwh = {job_id: float(total or 0.0) for job_id, total in energy}
    return {j: ReportedCarbon(g, kwh.get(j, 0.0)) for j, g in figures.items()}
