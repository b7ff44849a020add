"""`fabriek federation`: Fabriek as a site of the EuroHPC federation platform (server side):
sync once with the platform now, or say where the site stands."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from fabriek.cli.output import console, print_json, print_table
from fabriek.services.access.config import load_access_config
from fabriek.services.federation import config
from fabriek.services.federation.status import status
from fabriek.settings import Settings
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.migrate import require_current

federation_app = typer.Typer(
    help="The EuroHPC federation platform: its orders in, usage back.", no_args_is_help=True
)

JsonOption = Annotated[bool, typer.Option("--json", help="print JSON")]


@federation_app.command("sync")
def sync(as_json: JsonOption = False) -> None:
    """Sync with the platform once now: take in its orders (create, update, terminate),
    follow each project's team, report usage of months that ended (and corrections)."""
    settings = Settings()
    config.check_platform(settings)  # before the platform's client is imported (seconds)
    from fabriek.services.federation.sync import sync_once

    platform = config.platform(settings)
    rules = config.order_rules(settings, load_access_config(settings.access_file))
    engine = make_engine(settings.database_url)
    try:
        require_current(engine)
        result = sync_once(
            make_sessions(engine), platform, rules, config.components(settings), datetime.now(UTC)
        )
    finally:
        platform.close()
        engine.dispose()
    if as_json:
        print_json(result.to_json())
    else:
        console.print(
            f"Orders: {len(result.done)} done, {len(result.failed)} failed, "
            f"{len(result.held)} held, {len(result.reported_again)} reported again; "
            f"members: +{result.members_added} -{result.members_removed}; "
            f"usage figures sent: {result.usage_sent}."
        )
        for order, reason in result.held:
            console.print(f"held {order}: {reason}", markup=False)
        for order, reason in result.failed:
            console.print(f"failed {order}: {reason}", markup=False)
    if result.errors:
        # The sync did what it could; what it could not is the next sync's.
        if not as_json:
            for error in result.errors:
                typer.echo(f"fabriek: {error}", err=True)
        raise typer.Exit(1)


@federation_app.command("status")
def show_status(as_json: JsonOption = False) -> None:
    """Where the site stands: orders by outcome, those held or not yet reported, the
    platform's resources in Fabriek, and the usage figures reported."""
    settings = Settings()
    engine = make_engine(settings.database_url)
    try:
        require_current(engine)
        with make_sessions(engine)() as session:
            found = status(session)
    finally:
        engine.dispose()
    if as_json:
        print_json(found.to_json())
        return
    counts = ", ".join(f"{n} {o}" for o, n in sorted(found.orders.items())) or "none"
    console.print(
        f"Orders: {counts}; not yet reported: {len(found.unreported)}. Resources: "
        f"{found.resources} ({found.terminated} terminated). Usage figures: "
        f"{found.usage_figures} ({found.corrections} corrections), last "
        f"{found.last_report:%Y-%m-%d %H:%M} UTC."
        if found.last_report
        else f"Orders: {counts}; not yet reported: {len(found.unreported)}. Resources: "
        f"{found.resources} ({found.terminated} terminated). No usage reported yet.",
        markup=False,
    )
    waiting = [("held", o, r) for o, r in found.held] + [("failed", o, r) for o, r in found.failed]
    if waiting:
        print_table("Orders that need an operator", ["Outcome", "Order", "Reason"], waiting,
                    shortened=("Reason",))  # fmt: skip
    if found.turnaround:
        rows = [
            (m.month, m.allocations, f"{m.median_hours_to_usable:,.1f}", m.with_first_job,
             "-" if m.median_hours_to_first_job is None else f"{m.median_hours_to_first_job:,.1f}")
            for m in found.turnaround
        ]  # fmt: skip
        print_table("Turnaround from the platform's decision (median hours, by month decided)",
                    ["Month", "Allocations", "To usable", "With a job", "To first job"], rows)  # fmt: skip


def register(app: typer.Typer) -> None:
    app.add_typer(federation_app, name="federation")
