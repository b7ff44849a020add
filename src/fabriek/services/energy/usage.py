"""Usage rollups from the hourly energy records: who used how many GPU-hours, kWh, kg CO2e,
litres of water and kWh of reused heat, at any level and per hour, month or year."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, and_, select
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
            SiteRow.renewable_share, SiteRow.residual_mix_g_per_kwh,
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
    return [
        EnergyHour(
            hour=r[0], job_id=r[1], user=r[2], project=r[3], organisation=r[4], sector=r[5],
            hub=r[6], province=r[7], site=r[8], gpu_seconds=r[9], it_kwh=r[10],
            pue=r[11] or 1.0, wue_l_per_kwh=r[12] or 0.0, heat_reuse_share=r[13] or 0.0,
            g_per_kwh=r[14], source=r[15], renewable_share=r[16] or 0.0,
            residual_mix_g_per_kwh=r[17],
        )
        for r in rows
    ]  # fmt: skip
