"""`fabriek notifications`: one's notifications as a table or JSON, marking them read, and
how they are e-mailed (a daily digest unless changed)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from fabriek.cli.app import JsonFlag, Limit, app
from fabriek.cli.connection import client
from fabriek.cli.output import console, print_json, print_table
from fabriek.domain.notifications import NotificationSettings

notifications_app = typer.Typer(
    name="notifications",
    help="Your notifications, newest first; `read` and `settings` below.",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(notifications_app)


@notifications_app.callback()
def notifications(
    ctx: typer.Context,
    as_json: JsonFlag = False,
    unread: Annotated[bool, typer.Option("--unread", help="only the unread ones")] = False,
    limit: Limit = 100,
) -> None:
    """Your notifications, newest first (`--unread` for the unread ones only)."""
    if ctx.invoked_subcommand is not None:
        return
    with client() as c:
        found = c.notifications.list(limit=limit, unread=True if unread else None)
    if as_json:
        print_json(found.items)
        return
    rows = [
        (n.id, n.created_at.strftime("%Y-%m-%d %H:%M"), n.kind, "" if n.read_at else "new",
         n.subject)
        for n in found.items
    ]  # fmt: skip
    print_table(None, ["#ID", "WHEN (UTC)", "KIND", "", "SUBJECT"], rows,
                f"{found.total} notification(s)")  # fmt: skip


@notifications_app.command("read")
def read(
    notification_id: Annotated[
        int | None, typer.Argument(help="the notification to mark read", show_default=False)
    ] = None,
    read_all: Annotated[bool, typer.Option("--all", help="mark every unread one read")] = False,
) -> None:
    """Mark a notification read, or all of them with `--all`."""
    if (notification_id is None) == (not read_all):
        raise typer.BadParameter("give a notification ID or --all (not both)")
    with client() as c:
        if read_all:
            print(f"Marked {c.notifications.read_all()} notification(s) read")
        else:
            assert notification_id is not None
            c.notifications.read(notification_id)
            print(f"Notification {notification_id}: read")


def _show(found: NotificationSettings) -> None:
    console.print(f"[bold]delivery[/] {found.delivery.value} (to {escape(str(found.email))})")
    console.print(f"[bold]muted[/]    {escape(', '.join(found.muted) or '-')}")
    console.print(f"[bold]kinds[/]    {escape(', '.join(found.kinds))}", style="dim")


@notifications_app.command("settings")
def settings(
    delivery: Annotated[
        str | None, typer.Option("--delivery", help="digest (daily), immediate or none")
    ] = None,
    mute: Annotated[
        list[str] | None, typer.Option("--mute", help="a kind not to e-mail; repeatable")
    ] = None,
    unmute: Annotated[
        list[str] | None, typer.Option("--unmute", help="a kind to e-mail again; repeatable")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """How your notifications are e-mailed; with options, change it."""
    with client() as c:
        found = c.notifications.settings()
        unknown = sorted(set(unmute or []) - set(found.kinds))
        if unknown:
            raise typer.BadParameter(
                f"--unmute: no kind {', '.join(unknown)}; kinds: {', '.join(found.kinds)}"
            )
        if delivery is not None or mute or unmute:
            muted = None
            if mute or unmute:
                muted = sorted((set(found.muted) | set(mute or [])) - set(unmute or []))
            found = c.notifications.update_settings(delivery=delivery, muted=muted)
    if as_json:
        print_json(found)
    else:
        _show(found)
