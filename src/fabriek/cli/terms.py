"""`fabriek terms`: the factory's and the sites' terms of use, where you stand with each,
reading and accepting them; publishing a new version (admins, a site's operators)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from fabriek.cli.app import JsonFlag, app
from fabriek.cli.connection import client
from fabriek.cli.output import console, print_json, print_table
from fabriek.domain.terms import TermsDraft
from fabriek.sdk.core import validated

terms_app = typer.Typer(
    name="terms",
    help="Terms of use and whether you accepted them; `show`, `accept`, `publish` below.",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(terms_app)

Scope = Annotated[str, typer.Argument(help='"factory", or a site\'s name', show_default=False)]


@terms_app.callback()
def terms(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """The terms of use that apply to you: the newest version of each, what you accepted,
    and what you must accept before your next job."""
    if ctx.invoked_subcommand is not None:
        return
    with client() as c:
        found = c.terms.mine()
    if as_json:
        print_json(found)
        return
    rows = [
        (t.scope, t.newest_version, t.title,
         f"v{t.accepted_version} {t.accepted_at:%Y-%m-%d %H:%M}" if t.accepted_at else "-",
         "ACCEPT" if t.pending else "ok")
        for t in found
    ]  # fmt: skip
    pending = [t for t in found if t.pending]
    footer = (
        f"accept with `fabriek terms accept {pending[0].scope}` after reading "
        f"`fabriek terms show {pending[0].scope}`"
        if pending
        else f"{len(found)} set(s) of terms, nothing to accept"
    )
    print_table(None, ["SCOPE", "#VERSION", "TITLE", "ACCEPTED (UTC)", "STATUS"], rows, footer)


@terms_app.command("show")
def show(
    scope: Scope,
    version: Annotated[
        int | None, typer.Argument(help="a version; default: the newest", show_default=False)
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Print a scope's terms (the newest version, or the one given)."""
    with client() as c:
        found = c.terms.get(scope, version)
    if as_json:
        print_json(found)
        return
    kind = "must be accepted" if found.requires_acceptance else "editorial"
    console.print(
        f"[bold]{escape(found.title)}[/] ({escape(found.scope)}, version {found.version}, {kind})"
    )
    console.print(f"published {found.published_at:%Y-%m-%d %H:%M} UTC", style="dim", markup=False)
    print()
    print(found.body)


@terms_app.command("accept")
def accept(
    scope: Scope,
    version: Annotated[
        int | None, typer.Argument(help="the version you read; default: the newest")
    ] = None,
) -> None:
    """Accept a scope's terms (the newest version, or the one given)."""
    with client() as c:
        chosen = version if version is not None else c.terms.get(scope).version
        done = c.terms.accept(scope, chosen)
    print(f"Accepted {done.scope}'s terms of use version {done.version} "
          f"at {done.accepted_at:%Y-%m-%d %H:%M} UTC")  # fmt: skip


@terms_app.command("publish")
def publish(
    scope: Scope,
    title: Annotated[str, typer.Option("--title", help="the terms' title")],
    file: Annotated[
        Path,
        typer.Option("--file", exists=True, dir_okay=False, readable=True, help="the text"),
    ],
    editorial: Annotated[
        bool,
        typer.Option("--editorial", help="an editorial change: earlier acceptances still count"),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Publish the next version of a scope's terms (admins; a site's operators for it)."""
    draft = validated(
        TermsDraft,
        {"scope": scope, "title": title, "body": file.read_text(encoding="utf-8"),
         "requires_acceptance": not editorial},
    )  # fmt: skip
    with client() as c:
        found = c.terms.publish(draft)
    if as_json:
        print_json(found)
        return
    what = "editorial: earlier acceptances still count" if editorial else "must be accepted"
    print(f"Published {found.scope}'s terms of use version {found.version} ({what})")
