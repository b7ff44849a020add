"""Hourly grid carbon intensity: loaded from a CSV series into the store, per zone."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.errors import InvalidInput
from fabriek.store.tables import GridIntensityRow

COLUMNS = ("datetime_utc", "carbon_intensity_gco2eq_per_kwh")


def read_intensity_csv(path: Path) -> list[tuple[datetime, float]]:
    """The (hour, g CO2e/kWh) pairs of a CSV with columns `datetime_utc` (ISO 8601, UTC)
    and `carbon_intensity_gco2eq_per_kwh`; a bad row is an error naming its line and column."""
    try:
        handle = path.open(newline="")
    except OSError as missing:
        raise InvalidInput(f"cannot read {path}: {missing.strerror}") from None
    out: list[tuple[datetime, float]] = []
    with handle:
        reader = csv.DictReader(handle)
        absent = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if absent:
            raise InvalidInput(f"{path}: missing column {', '.join(absent)}")
        for line, row in enumerate(reader, start=2):
            try:
                hour = datetime.fromisoformat(row[COLUMNS[0]].replace("Z", "+00:00"))
            except ValueError:
                raise InvalidInput(f"{path} line {line}, {COLUMNS[0]}: not an ISO time") from None
            try:
                value = float(row[COLUMNS[1]])
            except ValueError:
                raise InvalidInput(f"{path} line {line}, {COLUMNS[1]}: not a number") from None
            if value < 0:
                raise InvalidInput(f"{path} line {line}, {COLUMNS[1]}: negative")
            hour = hour.replace(tzinfo=UTC) if hour.tzinfo is None else hour.astimezone(UTC)
            out.append((hour.replace(minute=0, second=0, microsecond=0), value))
    return out


def load_intensity(
    session: Session, zone: str, series: list[tuple[datetime, float]], source: str
) -> int:
    """Store a zone's hourly series (hours already stored are replaced); how many hours."""
    zone = zone.upper()
    if not series:
        return 0
    first, last = min(h for h, _ in series), max(h for h, _ in series)
    stored = {
        r.hour.astimezone(UTC): r
        for r in session.scalars(
            select(GridIntensityRow).where(
                GridIntensityRow.zone == zone,
                GridIntensityRow.hour >= first,
                GridIntensityRow.hour <= last,
            )
        )
    }
    for hour, value in series:
        row = stored.get(hour)
        if row is None:
            row = GridIntensityRow(zone=zone, hour=hour, g_per_kwh=value, source=source)
            session.add(row)
            stored[hour] = row
        else:
            row.g_per_kwh, row.source = value, source
    session.commit()
    return len(series)
