"""Hourly heat demand per zone: a typical-year profile (ETM format) put on the calendar of
the hours asked for and stored, so the live scheduler can weigh heat reuse."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from fabriek.domain.csv_files import read_csv_file
from fabriek.domain.errors import InvalidInput
from fabriek.domain.heat import HeatProfile, parse_heat_profile
from fabriek.store.tables import HeatDemandRow

# Longest span one load may cover: a decade of hours is already 87,600 rows.
MAX_YEARS = 10
# A grid zone as sites name theirs (`domain.sites.GridZone`): NL, DE, DK-DK1, ...
ZONE = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,5})?$")


def read_heat_profile(path: Path, column: str | None = None) -> HeatProfile:
    """The profile in an ETM hourly CSV (see `domain.heat`); a bad file is `InvalidInput`
    naming the file, line and column."""
    return read_csv_file(path, lambda lines, name: parse_heat_profile(lines, column, name))


def load_heat_demand(
    session: Session,
    zone: str,
    profile: HeatProfile,
    first: datetime,
    until: datetime,
    source: str,
) -> int:
    """Store a zone's heat demand for every hour from `first` up to `until` (UTC, whole
    hours), replacing what was stored for those hours; commits; how many hours."""
    zone = zone.upper()
    if not ZONE.match(zone):
        raise InvalidInput.on("zone", f"{zone!r} is not a grid zone such as NL, DE or DK-DK1")
    start = first.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    end = until.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if end <= start:
        raise InvalidInput.on("until", f"{end:%Y-%m-%d %H:%M} is not after {start:%Y-%m-%d %H:%M}")
    if end - start > timedelta(days=366 * MAX_YEARS):
        raise InvalidInput.on("until", f"at most {MAX_YEARS} years in one load")
    hours = int((end - start).total_seconds() // 3600)
    values = profile.series(start, hours)
    session.execute(
        delete(HeatDemandRow).where(
            HeatDemandRow.zone == zone, HeatDemandRow.hour >= start, HeatDemandRow.hour < end
        )
    )
    rows = [
        {"zone": zone, "hour": start + timedelta(hours=i), "demand": v, "source": source}
        for i, v in enumerate(values)
    ]
    # In slices: one statement per few thousand rows keeps every database's limits.
    for i in range(0, len(rows), 5000):
        session.execute(insert(HeatDemandRow), rows[i : i + 5000])
    session.commit()
    return hours
