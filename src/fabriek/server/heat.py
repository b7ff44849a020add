"""`fabriek heat load`: put a zone's hourly heat demand into the store (server side)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from fabriek.cli.output import console
from fabriek.domain.errors import InvalidInput
from fabriek.services.energy.heat import load_heat_demand, read_heat_profile
from fabriek.settings import Settings
from fabriek.store.db import make_engine, make_sessions

heat_app = typer.Typer(
    help="Heat demand: hourly district-heat demand per zone.", no_args_is_help=True
)


def _when(option: str, text: str) -> datetime:
    raw = text.strip()
    try:
        value = datetime.fromisoformat(raw[:-1] + "+00:00" if raw.endswith("Z") else raw)
    except ValueError:
        raise InvalidInput.on(option, f"{text!r} is not an ISO date (e.g. 2026-01-01)") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@heat_app.command("load")
def load(
    path: Annotated[
        Path, typer.Argument(help="ETM hourly profile CSV: hour_of_year and share columns")
    ],
    zone: Annotated[str, typer.Option(help="grid zone whose sites reuse heat: NL, DE, ...")],
    column: Annotated[
        str | None,
        typer.Option(help="share column (default: households' space heating, or the only one)"),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--from", help="first hour, ISO date (UTC); default: this year's start"),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", help="end, exclusive; default: the start of the year after next"),
    ] = None,
    source: Annotated[
        str, typer.Option(help="where the profile comes from, with its version")
    ] = "",
) -> None:
    """Load (or replace) a zone's hourly heat demand for a span of dates: the typical year
    of the profile, normalised to 0..1 of its peak and put on the calendar (same date and
    hour of day, UTC; 29 February as the 28th). Sites in that zone that reuse heat use it."""
    now = datetime.now(UTC)
    first = _when("--from", since) if since else datetime(now.year, 1, 1, tzinfo=UTC)
    end = _when("--until", until) if until else datetime(now.year + 2, 1, 1, tzinfo=UTC)
    profile = read_heat_profile(path, column)
    named = source or f"{path.name} ({profile.column})"
    engine = make_engine(Settings().database_url)
    try:
        with make_sessions(engine)() as session:
            count = load_heat_demand(session, zone, profile, first, end, named)
    finally:
        engine.dispose()
    console.print(
        f"Loaded {count:,} hours of heat demand for {zone.upper()} "
        f"({first:%Y-%m-%d} to {end:%Y-%m-%d}, column {profile.column})."
    )


def register(app: typer.Typer) -> None:
    app.add_typer(heat_app, name="heat")
