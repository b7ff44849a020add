"""`fabriek usage`: GPU-hours, energy, carbon, water and reused heat, rolled up."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

import typer

from fabriek.cli.app import JsonFlag, app
from fabriek.cli.connection import client
from fabriek.cli.output import print_json, print_table
from fabriek.domain.usage import GroupBy, Step


def calendar_month(text: str | None, today: date) -> str | None:
    """`last` and `this` as the month they mean today (`2025-03`); other text as given, for
    the server to judge. Examples that say `--month last` work whenever they are run."""
    if text == "this":
        return f"{today:%Y-%m}"
    if text == "last":
        return f"{today.year - (today.month == 1)}-{(today.month - 2) % 12 + 1:02d}"
    return text


def calendar_year(text: str | None, today: date) -> str | None:
    """`last` and `this` as the year they mean today; other text as given."""
    return {"this": str(today.year), "last": str(today.year - 1)}.get(text or "", text)


@app.command()
def usage(
    by: Annotated[GroupBy, typer.Option("--by", help="the level to sum over")] = GroupBy.PROJECT,
    month: Annotated[
        str | None, typer.Option(help="e.g. 2025-03, or last or this (month, in UTC)")
    ] = None,
    year: Annotated[
        str | None, typer.Option(help="e.g. 2025, or last or this (default: this year)")
    ] = None,
    step: Annotated[Step, typer.Option(help="per hour, month, year, or total")] = Step.TOTAL,
    as_json: JsonFlag = False,
) -> None:
    """What your projects (your hub's; all, for admins) used: GPU-hours, kWh, kg CO2e, L
    water and kWh of reused heat, from the hourly energy of finished job runs."""
    today = datetime.now(UTC).date()
    month, year = calendar_month(month, today), calendar_year(year, today)
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
