"""`fabriek audit`: the audit trail as a table or JSON, its head for anchoring elsewhere,
and `fabriek audit verify` (exits 1 and names the first bad entry when the chain is broken)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from fabriek.cli.app import JsonFlag, Limit, app
from fabriek.cli.connection import client
from fabriek.cli.output import console, print_json, print_table
from fabriek.domain.audit import AuditEntryView

# Exit status of `verify` when the check ran and found the chain broken.
BROKEN = 1

audit_app = typer.Typer(
    name="audit",
    help="The audit trail, newest first; `verify` and `head` below.",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(audit_app)


def _detail(entry: AuditEntryView) -> str:
    if not entry.detail:
        return ""
    return json.dumps(entry.detail, ensure_ascii=False, sort_keys=True, separators=(", ", ": "))


@audit_app.callback()
def audit(
    ctx: typer.Context,
    dataset: Annotated[str | None, typer.Option(help="only entries about this dataset")] = None,
    project: Annotated[
        str | None, typer.Option("--project", "-A", help="only this project (name or id)")
    ] = None,
    action: Annotated[str | None, typer.Option(help="only this action, e.g. download")] = None,
    actor: Annotated[str | None, typer.Option(help="only entries by this username")] = None,
    since: Annotated[
        str | None, typer.Option(help="only entries at or after this time, e.g. 2026-12-01T00:00Z")
    ] = None,
    as_json: JsonFlag = False,
    limit: Limit = 100,
) -> None:
    """Audit entries you may see (admins: all; others: their projects' and their own)."""
    if ctx.invoked_subcommand is not None:
        return
    with client() as c:
        found = c.audit.entries(
            limit=limit, dataset=dataset, project=project, action=action, actor=actor, since=since
        )
    if as_json:
        print_json(found.items)
        return
    rows = [
        (e.seq, e.at.strftime("%Y-%m-%d %H:%M:%S"), e.action, e.actor or "-",
         e.project_id if e.project_id is not None else "", e.dataset or "", e.target or "",
         _detail(e))
        for e in found.items
    ]  # fmt: skip
    print_table(
        None,
        ["#SEQ", "WHEN (UTC)", "ACTION", "ACTOR", "PROJECT", "DATASET", "TARGET", "DETAIL"],
        rows,
        f"{found.total} entr{'y' if found.total == 1 else 'ies'}",
    )


@audit_app.command("verify")
def verify(
    expected_head: Annotated[
        str | None,
        typer.Option(
            "--expected-head",
            help="SEQ:HASH from an earlier `fabriek audit head`: also catches truncation",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Check the whole chain (admins); exit 1 naming the first entry altered, removed or
    reordered."""
    with client() as c:
        report = c.audit.verify(expected_head)
    if as_json:
        print_json(report)
    elif report.ok:
        console.print(f"[green]OK[/] {escape(report.message)}")
    else:
        console.print(
            f"[red]BROKEN[/] at entry {report.broken_seq} ({report.broken_kind}): "
            f"{escape(report.message)}"
        )
    if not report.ok:
        raise typer.Exit(BROKEN)


@audit_app.command("head")
def head(as_json: JsonFlag = False) -> None:
    """The newest entry as SEQ:HASH (admins): keep it somewhere Fabriek cannot write, and
    give it to `verify --expected-head` later."""
    with client() as c:
        found = c.audit.head()
    if as_json:
        print_json({"head": found})
    else:
        print(found)
