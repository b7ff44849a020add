"""Hourly grid carbon intensity: loaded from a CSV series into the store, per zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.scheduler.carbon_series import load_carbon
from fabriek.store.tables import GridIntensityRow


def read_intensity_csv(path: Path) -> list[tuple[datetime, float]]:
    """The (hour, g CO2e/kWh) pairs of an hourly carbon CSV, read by the simulator's own
    strict reader (`scheduler.carbon_series.load_carbon`): consecutive whole hours, finite
    values >= 0; a bad row is an `InvalidInput` naming its line and column, never a gap or a NaN
    stored as an hour's intensity."""
    series = load_carbon(path)
    return [(series.start + timedelta(hours=i), v) for i, v in enumerate(series.values)]


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
