"""Allocation commands: `fabriek allocations` (grants and their ledgers) and `fabriek budget`
(what each project may still spend), in normalised and raw GPU-hours."""

from __future__ import annotations

from typing import Annotated

import typer

from fabriek.cli.app import JsonFlag, Limit, app
from fabriek.cli.connection import client
from fabriek.cli.output import print_json, print_table
from fabriek.domain.access.allocations import Allocation, SourceKind

ProjectOpt = Annotated[str | None, typer.Option("--project", "-A", help="only this project")]

allocations_app = typer.Typer(help="GPU-hour allocations of your projects.", no_args_is_help=False)
app.add_typer(allocations_app, name="allocations")


def _gpu_h(value: float) -> str:
    return f"{value:,.1f}"


def _raw(hours: dict[str, float]) -> str:
    return ", ".join(f"{h:,.0f} {t}" for t, h in sorted(hours.items())) or "-"


def source_of(a: Allocation) -> str:
    """Where an allocation came from, in a few words: `EuroHPC Fast Lane`, `call NL-AI-26`."""
    if a.source is None:
        return "-"
    if a.source.kind == SourceKind.EUROHPC:
        return f"EuroHPC {a.source.name}"
    if a.source.kind == SourceKind.NATIONAL_CALL:
        return f"call {a.source.call}"
    return "operator"


def _clock(a: Allocation) -> str:
    t = a.turnaround
    if t is None:
        return "-"
    first = "no job yet" if t.hours_to_first_job is None else f"{t.hours_to_first_job:,.1f} h"
    return f"usable {t.hours_to_usable:,.1f} h, first job {first}"


@allocations_app.callback(invoke_without_command=True)
def allocations(
    ctx: typer.Context,
    project: ProjectOpt = None,
    active: Annotated[bool, typer.Option("--active", help="only those running now")] = False,
    as_json: JsonFlag = False,
    limit: Limit = 100,
) -> None:
    """List allocations: awarded, consumed and remaining GPU-h, and when they end."""
    if ctx.invoked_subcommand is not None:
        return
    with client() as c:
        found = c.access.allocations(limit=limit, project=project, active=True if active else None)
    if as_json:
        print_json(found.items)
        return
    rows = [
        (a.id, a.project, a.track, source_of(a), _raw(a.awarded_raw), _gpu_h(a.awarded_gpu_hours),
         _gpu_h(a.consumed_gpu_hours), _gpu_h(a.remaining_gpu_hours), f"{a.used_percent:.0f} %",
         ", ".join(a.sites) or "any", f"{a.starts_at:%Y-%m-%d}", f"{a.ends_at:%Y-%m-%d}")
        for a in found.items
    ]  # fmt: skip
    print_table(
        None,
        ["#", "Project", "Track", "Source", "Awarded (raw GPU-h)", "Awarded GPU-h", "Consumed GPU-h",
         "Remaining GPU-h", "Used", "Sites", "Starts", "Ends"],
        rows,
        f"{found.total} allocation(s); GPU-h normalised by GPU type",
    )  # fmt: skip


@allocations_app.command("show")
def show(
    allocation_id: Annotated[int, typer.Argument(help="allocation number")],
    as_json: JsonFlag = False,
) -> None:
    """One allocation and its ledger: each job run charged to it."""
    with client() as c:
        found = c.access.allocation(allocation_id)
        ledger = c.access.charges(allocation_id)
    if as_json:
        print_json({"allocation": found, "charges": ledger})
        return
    _print_budgets([found], f"allocation {found.id} of {found.project} ({found.track})")
    if found.source is not None:
        typer.echo(f"Source: {source_of(found)} ({found.source.name})")
    if found.turnaround is not None:
        decided = f"{found.turnaround.decided_at:%Y-%m-%d %H:%M} UTC"
        typer.echo(f"Turnaround from the platform's decision ({decided}): {_clock(found)}")
    rows = [
        (ch.job_id, ch.gpus, ch.gpu_type or "-", f"{ch.started_at:%Y-%m-%d %H:%M:%S}",
         f"{ch.ended_at:%Y-%m-%d %H:%M:%S}", f"{ch.raw_gpu_hours:,.3f}", f"{ch.factor:g}",
         f"{ch.gpu_hours:,.3f}")
        for ch in ledger
    ]  # fmt: skip
    print_table(
        "Charges",
        ["Job", "GPUs", "Type", "Started", "Ended", "Raw GPU-h", "Factor", "GPU-h"],
        rows,
        f"{len(ledger)} charge(s)",
    )


def _print_budgets(items: list[Allocation], caption: str) -> None:
    rows = [
        (a.project, a.track, _gpu_h(a.awarded_gpu_hours), _gpu_h(a.consumed_gpu_hours),
         _gpu_h(a.committed_gpu_hours), _gpu_h(a.remaining_gpu_hours),
         _gpu_h(a.consumed_raw_gpu_hours), f"{a.used_percent:.0f} %", f"{a.ends_at:%Y-%m-%d}")
        for a in items
    ]  # fmt: skip
    print_table(
        None,
        ["Project", "Track", "Awarded GPU-h", "Consumed GPU-h", "Committed GPU-h",
         "Remaining GPU-h", "Consumed raw GPU-h", "Used", "Ends"],
        rows,
        caption,
    )  # fmt: skip


@app.command()
def budget(project: ProjectOpt = None, as_json: JsonFlag = False) -> None:
    """What your projects may still spend: each active allocation's awarded, consumed
    (finished and running jobs), committed (running jobs' remaining time limits) and
    remaining GPU-hours. A job starts only if its time limit fits in what remains."""
    with client() as c:
        found = c.access.allocations(limit=1000, project=project, active=True)
    if as_json:
        print_json(found.items)
        return
    _print_budgets(found.items, f"{found.total} active allocation(s); GPU-h normalised by GPU type")
