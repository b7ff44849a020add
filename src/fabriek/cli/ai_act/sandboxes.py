"""`fabriek sandbox`: allocations in national AI regulatory sandboxes (AI Act Art. 57-58),
with their plan and exit report."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from fabriek.cli.app import JsonFlag, app
from fabriek.cli.connection import client
from fabriek.cli.output import console, print_json, print_table
from fabriek.domain.ai_act.sandboxes import Sandbox, SandboxDraft
from fabriek.sdk.core import validated

sandbox_app = typer.Typer(help="AI regulatory sandboxes and their documents.", no_args_is_help=True)
app.add_typer(sandbox_app, name="sandbox")

AllocationId = Annotated[int, typer.Argument(help="allocation number")]
Kind = Annotated[str, typer.Argument(help="plan or exit-report")]


def _print(found: Sandbox, as_json: bool) -> None:
    if as_json:
        print_json(found)
        return
    console.print(
        f"allocation {found.allocation_id} of {found.project}: sandbox of {found.authority} "
        f"({found.member_state}){f', reference {found.reference}' if found.reference else ''}",
        markup=False,
    )
    rows = [
        (d.kind.value, d.media_type, f"{d.bytes:,}", d.filed_by, f"{d.filed_at:%Y-%m-%d %H:%M}",
         d.versions)
        for d in found.documents
    ]  # fmt: skip
    print_table("Documents", ["Kind", "Type", "Bytes", "Filed by", "Filed at (UTC)", "#Filed"],
                rows)  # fmt: skip


@sandbox_app.command("show")
def show(allocation_id: AllocationId, as_json: JsonFlag = False) -> None:
    """The sandbox an allocation is part of, and its documents."""
    with client() as c:
        _print(c.ai_act.sandbox(allocation_id), as_json)


@sandbox_app.command("mark")
def mark(
    allocation_id: AllocationId,
    authority: Annotated[str, typer.Option(help="the national competent authority")],
    member_state: Annotated[str, typer.Option("--member-state", help="e.g. NL")] = "NL",
    reference: Annotated[str | None, typer.Option(help="the authority's reference")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Mark an allocation as part of a sandbox (access team, admins)."""
    body = {"authority": authority, "member_state": member_state, "reference": reference}
    with client() as c:
        _print(c.ai_act.mark_sandbox(allocation_id, validated(SandboxDraft, body)), as_json)


@sandbox_app.command("file")
def file(
    allocation_id: AllocationId,
    kind: Kind,
    path: Annotated[Path, typer.Argument(help="a Markdown (.md) or text file")],
    as_json: JsonFlag = False,
) -> None:
    """File the sandbox plan or exit report from a file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc}") from None
    media = "text/markdown" if path.suffix.lower() in {".md", ".markdown"} else "text/plain"
    with client() as c:
        _print(c.ai_act.file_sandbox_document(allocation_id, kind, text, media), as_json)


@sandbox_app.command("get")
def get(allocation_id: AllocationId, kind: Kind) -> None:
    """Print the newest plan or exit report."""
    with client() as c:
        text = c.ai_act.sandbox_document(allocation_id, kind)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
