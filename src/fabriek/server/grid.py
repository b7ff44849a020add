"""`fabriek grid load`: put an hourly carbon-intensity series into the store (server side)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fabriek.cli.output import console
from fabriek.services.energy.grid import load_intensity, read_intensity_csv
from fabriek.settings import Settings
from fabriek.store.db import make_engine, make_sessions

grid_app = typer.Typer(help="Grid data: hourly carbon intensity per zone.", no_args_is_help=True)


@grid_app.command("load")
def load(
    path: Annotated[Path, typer.Argument(help="CSV: datetime_utc,carbon_intensity_gco2eq_per_kwh")],
    zone: Annotated[str, typer.Option(help="grid zone, as the sites' jurisdiction: NL, DE, ...")],
    source: Annotated[str, typer.Option(help="where the series comes from, with its version")] = "",
) -> None:
    """Load (or replace) a zone's hourly carbon intensity; sites in that zone use it."""
    series = read_intensity_csv(path)
    engine = make_engine(Settings().database_url)
    try:
        with make_sessions(engine)() as session:
            count = load_intensity(session, zone, series, source or path.name)
    finally:
        engine.dispose()
    console.print(f"Loaded {count:,} hours of grid intensity for {zone.upper()}.")


def register(app: typer.Typer) -> None:
    app.add_typer(grid_app, name="grid")
