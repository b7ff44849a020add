"""Support commands: `fabriek support new|ls|show|reply|status|handover|triage|attach|
download|report|categories|inbound`. Tickets go to the AI hub of your organisation's
province (or the central desk); `inbound` is what the support mailbox pipes replies into."""

from __future__ import annotations

import mimetypes
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from fabriek.cli.app import JsonFlag, Limit, app
from fabriek.cli.connection import client
from fabriek.cli.output import console, print_json, print_table
from fabriek.domain.calendar import AMSTERDAM
from fabriek.domain.errors import InvalidInput
from fabriek.domain.support.report import DurationStats
from fabriek.domain.support.shapes import Ticket, TicketChange, TicketContext, TicketDraft
from fabriek.domain.support.tickets import parse_ticket_reference
from fabriek.sdk.core import validated

support_app = typer.Typer(
    help="Support tickets: ask your AI hub or the central desk for help.", no_args_is_help=True
)
app.add_typer(support_app, name="support")

TicketArg = Annotated[str, typer.Argument(help="the ticket: T42 or 42", show_default=False)]
BodyOpt = Annotated[
    str | None,
    typer.Option("--body", help="the text: a file (Markdown), or - to read standard input"),
]
AttachOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--attach", help="attach this file (repeat for more)", exists=True, dir_okay=False
    ),
]
# Types `mimetypes` does not know on every system.
_KNOWN_TYPES = {".md": "text/markdown", ".log": "text/plain", ".out": "text/plain",
                ".err": "text/plain", ".yaml": "application/yaml", ".yml": "application/yaml"}  # fmt: skip


def _ticket_id(text: str) -> int:
    try:
        return parse_ticket_reference(text)
    except ValueError as bad:
        raise InvalidInput(str(bad)) from None


def _read_body(source: str | None) -> str:
    if source is None:
        return ""
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"--body {source}: not UTF-8 text") from None


def _media_type(path: Path) -> str:
    return (
        _KNOWN_TYPES.get(path.suffix.lower())
        or mimetypes.guess_type(path.name)[0]
        or ("application/octet-stream")
    )


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return f"{moment.astimezone(AMSTERDAM):%Y-%m-%d %H:%M}"


@support_app.command("categories")
def categories(as_json: JsonFlag = False) -> None:
    """The categories, who answers each, and the service levels in working days."""
    with client() as c:
        found = c.support.categories()
    if as_json:
        print_json(found)
        return
    rows = [(i.code.value, i.name, "central desk" if i.owner == "central" else "your hub",
             i.first_answer_working_days, i.resolution_working_days) for i in found]  # fmt: skip
    print_table(None, ["Category", "Name", "Answered by", "First answer (working days)",
                       "Resolution (working days)"], rows)  # fmt: skip


@support_app.command("new")
def new(
    category: Annotated[
        str, typer.Option(help="jobs, access, data, ai-act, energy, onboarding or other")
    ],
    subject: Annotated[str, typer.Option(help="the question in one line")],
    body: BodyOpt = None,
    about: Annotated[
        str | None,
        typer.Option(help="job:ID, proposal:ID or dataset:PROJECT/NAME of your projects"),
    ] = None,
    project: Annotated[
        str | None, typer.Option(help="one of your projects (its members see it)")
    ] = None,
    priority: Annotated[str, typer.Option(help="low, normal, high or urgent")] = "normal",
    share_context: Annotated[
        bool,
        typer.Option(
            "--share-context",
            help="consent to attach what Fabriek knows of --about: the job's state, reason, "
            "site, last log lines and budget",
        ),
    ] = False,
    attach: AttachOpt = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="do not ask, even with suggestions")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Open a ticket. Articles that may already answer it are shown first (and, at a
    terminal, you are asked whether to go on)."""
    text = _read_body(body)
    with client() as c:
        suggestions = c.support.suggest_articles(f"{subject}\n{text}", None, 3)
        if suggestions and not as_json:
            console.print("These articles may answer it:")
            for s in suggestions:
                console.print(f"  - {s.title} (`fabriek kb show {s.slug}`)", markup=False)
            if (
                not yes
                and body != "-"
                and sys.stdin.isatty()
                and not typer.confirm("Open the ticket anyway?", default=True)
            ):
                raise typer.Exit(0)
        ticket = c.support.open_ticket(validated(TicketDraft, {
            "subject": subject, "body": text, "category": category, "priority": priority,
            "about": about, "project": project, "share_context": share_context,
        }))  # fmt: skip
        for path in attach or []:
            c.support.attach(ticket.id, path, _media_type(path))
        if attach:
            ticket = c.support.ticket(ticket.id)
    if as_json:
        print_json(ticket)
        return
    due = _when(ticket.service_level.first_answer_due)
    console.print(
        f"Opened [bold]{escape(ticket.reference)}[/] at {escape(ticket.queue_name)}; "
        f"first answer due by {due}."
    )
    if ticket.reply_address:
        console.print(f"Replies by e-mail: {ticket.reply_address}", style="dim", markup=False)


@support_app.command("ls")
def ls(
    status: Annotated[
        list[str] | None,
        typer.Option("--status", help="new, triaged, waiting-for-user, resolved, closed or open"),
    ] = None,
    queue: Annotated[str | None, typer.Option(help="a hub's code, or central")] = None,
    mine: Annotated[bool, typer.Option("--mine", help="only those you opened")] = False,
    as_json: JsonFlag = False,
    limit: Limit = 100,
) -> None:
    """The tickets you can see: yours and your projects'; hub staff their hub's queue."""
    with client() as c:
        found = c.support.tickets(
            limit=limit, status=status or None, queue=queue, mine=mine or None
        )
    if as_json:
        print_json(found.items)
        return
    rows = [
        (t.reference, t.subject[:60], t.category.value, t.priority.value, t.status.value,
         t.queue, t.author, _when(t.created_at), _when(t.first_answer_due),
         "BREACHED" if t.breached else "")
        for t in found.items
    ]  # fmt: skip
    print_table(None, ["Ticket", "Subject", "Category", "Priority", "Status", "Desk", "By",
                       "Opened", "First answer due", "SLA"], rows,
                f"{found.total} ticket(s)")  # fmt: skip


def _print_context(ctx: TicketContext) -> None:
    """What the author shared with the ticket: the job, budget, output lines, proposal,
    dataset (user text, printed as given)."""
    console.print(f"\n[bold]Context[/] (shared by the author, {_when(ctx.captured_at)})")
    if ctx.job:
        j = ctx.job
        console.print(
            f"job {j.id} ({j.name}) of {j.project}: {j.state}"
            + (f" ({j.reason})" if j.reason else "")
            + f" at site {j.site or '-'}"
            + (f", exit code {j.exit_code}" if j.exit_code is not None else ""),
            markup=False,
        )
    if ctx.budget:
        b = ctx.budget
        console.print(
            f"allocation {b.allocation_id} ({b.track}): {b.consumed_gpu_hours:,.1f} GPU-h "
            f"consumed, {b.committed_gpu_hours:,.1f} committed, "
            f"{b.remaining_gpu_hours:,.1f} remaining of {b.awarded_gpu_hours:,.1f}",
            markup=False,
        )
    for title, lines in (
        ("standard output", ctx.log_lines),
        ("standard error", ctx.error_lines),
    ):
        if lines:
            console.print(f"last lines of {title}:", style="dim", markup=False)
            for line in lines:
                console.print(f"  {line}", markup=False, highlight=False)
    if ctx.proposal:
        p = ctx.proposal
        console.print(f"proposal {p.id} ({p.title}) to {p.call}: {p.state}", markup=False)
    if ctx.dataset:
        d = ctx.dataset
        console.print(
            f"dataset {d.project}/{d.name}: {d.classification}, {d.versions} version(s)",
            markup=False,
        )


def _print_ticket(t: Ticket) -> None:
    console.print(f"[bold]{escape(t.reference)}[/] {escape(t.subject)}")
    console.print(
        f"{t.status.value} · {t.category.value} · priority {t.priority.value} · at "
        f"{t.queue_name} · by {t.author}"
        + (f" · project {t.project}" if t.project else "")
        + (f" · about {t.about}" if t.about else ""),
        markup=False,
    )
    sla = t.service_level
    first = (
        "answered " + _when(sla.first_answer_at)
        if sla.first_answer_at
        else "due " + _when(sla.first_answer_due)
    )
    resolution = (
        "resolved " + _when(sla.resolved_at)
        if sla.resolved_at
        else "due " + _when(sla.resolution_due)
    )
    console.print(
        f"first answer ({sla.first_answer_working_days} working day(s)): {first}"
        + (" [red]BREACHED[/]" if sla.first_answer_breached else "")
    )
    console.print(
        f"resolution ({sla.resolution_working_days} working day(s)"
        + (f" + {sla.paused_working_days} waiting" if sla.paused_working_days else "")
        + f"): {resolution}"
        + (" [red]BREACHED[/]" if sla.resolution_breached else "")
    )
    if t.body:
        console.print(f"\n{t.body}", markup=False)
    if t.context is not None:
        _print_context(t.context)
    for m in t.messages:
        who = f"{m.author_name} ({m.author})" if m.author else m.author_name
        tag = " [yellow]internal note[/]" if m.internal else (" (staff)" if m.staff else "")
        console.print(
            f"\n[bold]{escape(who)}[/]{tag}, {_when(m.created_at)}"
            + (" by e-mail" if m.via == "email" else "")
        )
        console.print(m.body, markup=False, highlight=False)
    if t.attachments:
        console.print("\n[bold]Attachments[/]")
        for a in t.attachments:
            console.print(f"  #{a.id} {a.name} ({a.media_type}, {a.size_bytes:,} bytes)"
                          + (" internal" if a.internal else ""), markup=False)  # fmt: skip


@support_app.command("show")
def show(ticket: TicketArg, as_json: JsonFlag = False) -> None:
    """A ticket: its context, conversation, attachments and service levels."""
    with client() as c:
        found = c.support.ticket(_ticket_id(ticket))
    if as_json:
        print_json(found)
        return
    _print_ticket(found)


@support_app.command("reply")
def reply(
    ticket: TicketArg,
    body: BodyOpt = "-",
    internal: Annotated[
        bool, typer.Option("--internal", help="a note for the handling staff only")
    ] = False,
    status: Annotated[
        str | None, typer.Option(help="move it on with the reply, e.g. resolved or closed")
    ] = None,
    attach: AttachOpt = None,
) -> None:
    """Reply to a ticket (the text from --body FILE, or standard input)."""
    text = _read_body(body)
    if not text.strip():
        raise InvalidInput(
            "the reply is empty: give the text with --body FILE or on standard input"
        )
    ticket_id = _ticket_id(ticket)
    with client() as c:
        for path in attach or []:
            c.support.attach(ticket_id, path, _media_type(path), internal)
        message = c.support.reply(ticket_id, text, internal, status)
    kind = "Internal note" if message.internal else "Reply"
    console.print(f"{kind} added to T{ticket_id}.", markup=False)


@support_app.command("status")
def set_status(
    ticket: TicketArg,
    status: Annotated[str, typer.Argument(help="triaged, waiting-for-user, resolved or closed")],
    note: Annotated[str | None, typer.Option(help="why, for the history")] = None,
) -> None:
    """Move a ticket on (the staff any allowed step; you may close your own)."""
    with client() as c:
        found = c.support.set_status(_ticket_id(ticket), status, note)
    console.print(f"{found.reference} is {found.status.value}.", markup=False)


@support_app.command("handover")
def handover(
    ticket: TicketArg,
    to: Annotated[str, typer.Option("--to", help="a hub's code (brightlands, ...) or central")],
    note: Annotated[str | None, typer.Option(help="why, for the next desk")] = None,
) -> None:
    """Hand a ticket to another hub or to the central desk (the staff handling it)."""
    with client() as c:
        found = c.support.hand_over(_ticket_id(ticket), to, note)
    console.print(f"{found.reference} is now with {found.queue_name}.", markup=False)


@support_app.command("triage")
def triage(
    ticket: TicketArg,
    priority: Annotated[str | None, typer.Option(help="low, normal, high or urgent")] = None,
    category: Annotated[str | None, typer.Option(help="a new category")] = None,
) -> None:
    """Set a ticket's priority or category (the staff handling it)."""
    if priority is None and category is None:
        raise InvalidInput("say what to change: --priority and/or --category")
    with client() as c:
        found = c.support.update_ticket(
            _ticket_id(ticket),
            validated(TicketChange, {"priority": priority, "category": category}),
        )
    console.print(
        f"{found.reference}: {found.category.value}, priority {found.priority.value}.", markup=False
    )


@support_app.command("attach")
def attach_file(
    ticket: TicketArg,
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="the file")],
    internal: Annotated[
        bool, typer.Option("--internal", help="for the handling staff only")
    ] = False,
    media_type: Annotated[
        str | None, typer.Option("--type", help="its media type; default: by its extension")
    ] = None,
) -> None:
    """Attach a file to a ticket."""
    with client() as c:
        found = c.support.attach(
            _ticket_id(ticket), path, media_type or _media_type(path), internal
        )
    console.print(f"Attached #{found.id} {found.name} ({found.size_bytes:,} bytes).", markup=False)


@support_app.command("download")
def download(
    ticket: TicketArg,
    attachment: Annotated[int, typer.Argument(help="the attachment's number")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="default: its name")] = None,
) -> None:
    """Save a ticket's attachment."""
    ticket_id = _ticket_id(ticket)
    with client() as c:
        found = c.support.ticket(ticket_id)
        meta = next((a for a in found.attachments if a.id == attachment), None)
        if meta is None:
            raise InvalidInput(f"{found.reference} has no attachment #{attachment}")
        data = c.support.attachment(ticket_id, attachment)
    target = output or Path(meta.name)
    target.write_bytes(data)
    console.print(f"Saved {target} ({len(data):,} bytes).", markup=False)


def _hours(stats: DurationStats) -> str:
    if not stats.count:
        return "-"
    return (f"median {stats.median_hours:,.1f} h, mean {stats.mean_hours:,.1f} h over "
            f"{stats.count}; {stats.within_service_level} within the service level")  # fmt: skip


@support_app.command("report")
def report(
    hub: Annotated[str | None, typer.Option(help="a hub's code or central; default: yours")] = None,
    month: Annotated[str | None, typer.Option(help="YYYY-MM; default: this month")] = None,
    as_json: JsonFlag = False,
) -> None:
    """A desk's month: tickets by category and sector, answer and resolution times, service
    levels broken, expert hours delivered."""
    with client() as c:
        found = c.support.report(hub, month)
    if as_json:
        print_json(found)
        return
    console.print(f"[bold]{escape(found.hub_name)}[/], {found.month}: {found.tickets} ticket(s), "
                  f"{found.still_open} still open")  # fmt: skip
    sectors = sorted(found.by_sector)
    rows = [
        (category, *(found.by_category_and_sector[category].get(s, 0) for s in sectors),
         found.by_category[category])
        for category in found.by_category
    ]  # fmt: skip
    if rows:
        print_table("Tickets by category and sector", ["Category", *sectors, "Total"], rows)
    console.print(f"time to first answer: {_hours(found.first_answer)}", markup=False)
    console.print(f"time to resolution:   {_hours(found.resolution)}", markup=False)
    console.print(f"service levels broken: {found.breaches.first_answer} first answer, "
                  f"{found.breaches.resolution} resolution", markup=False)  # fmt: skip
    experts = ", ".join(f"{s} {h:,.1f} h" for s, h in found.expert_hours_by_sector.items())
    console.print(
        f"expert hours delivered: {found.expert_hours:,.1f}" + (f" ({experts})" if experts else ""),
        markup=False,
    )
    for note in found.notes:
        console.print(note, style="dim", markup=False)


@support_app.command("inbound")
def inbound(
    message: Annotated[
        Path | None, typer.Argument(help="the e-mail (.eml); default: standard input")
    ] = None,
) -> None:
    """Hand one e-mail from the support mailbox to Fabriek: a mail server pipes replies to
    tickets' addresses into this (`| fabriek support inbound`). A reply joins its ticket;
    anything else is bounced to its sender. Exits 0 once Fabriek took the message."""
    raw = message.read_bytes() if message else sys.stdin.buffer.read()
    with client() as c:
        result = c.support.inbound_email(raw)
    print(f"{result.outcome}: {result.ticket or '-'}: {result.reason}")
