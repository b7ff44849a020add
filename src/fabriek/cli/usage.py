"""`fabriek usage`: GPU-hours, energy, carbon, water and reused heat, rolled up."""

from __future__ import annotations

from typing import Annotated

import typer

from fabriek.cli.app import JsonFlag, app
from fabriek.cli.connection import client
from fabriek.cli.output import print_json, print_table
from fabriek.domain.usage import GroupBy, Step


@app.command()
def usage(
    by: Annotated[GroupBy, typer.Option("--by", help="the level to sum over")] = GroupBy.PROJECT,
    month: Annotated[str | None, typer.Option(help="e.g. 2025-03")] = None,
    year: Annotated[str | None, typer.Option(help="e.g. 2025 (default: this year)")] = None,
    step: Annotated[Step, typer.Option(help="per hour, month, year, or total")] = Step.TOTAL,
    as_json: JsonFlag = False,
) -> None:
    """What your projects (your hub's; all, for admins) used: GPU-hours, kWh, kg CO2e, L
    water and kWh of reused heat, from the hourly energy of finished job runs."""
    with client() as c:
        lines = c.usage.lines(by=by.value, step=step.value, month=month, year=year)
    if as_json:
        print_json(lines)
        return
    rows = [
        (u.period, u.group, f"{u.gpu_hours:,.2f}", f"{u.kwh_it:,.2f}", f"{u.kwh_facility:,.2f}",
         f"{u.kg_co2e:,.3f}", f"{u.kg_co2e_market:,.3f}", f"{u.litres_water:,.1f}", f"{u.kwh_heat_reused:,.2f}",
         ", ".join(u.sources))
        for u in lines
    ]  # fmt: skip
    unknown = sum(u.kwh_without_intensity for u in lines)
    note = f"; {unknown:,.2f} kWh in hours without grid intensity" if unknown else ""
    print_table(
        None,
        ["Period", by.value.capitalize(), "GPU-h", "kWh IT", "kWh facility", "kg CO2e",
         "kg CO2e market", "L water", "kWh heat reused", "Source"],
        rows,
        f"{len(lines)} line(s); kg CO2e location-based, market-based after the sites' "
        f"renewable instruments{note}",
    )  # fmt: skip
