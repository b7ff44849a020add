"""The support centre: tickets routed to the AI hubs and the central desk, their conversation,
status, handovers and attachments; e-mail piped in from the support mailbox; each desk's
monthly report. (Articles to suggest before a ticket is written: `/api/v1/kb/suggestions`.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, status
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from fabriek.api.context import Caller, Ctx, Db
from fabriek.api.routers import API_PREFIX
from fabriek.api.schemas import PageOut, paging
from fabriek.domain.errors import InvalidInput, TooLarge
from fabriek.domain.support.attachments import media_type_of
from fabriek.domain.support.report import SupportReport
from fabriek.domain.support.shapes import (
    Attachment,
    CategoryInfo,
    Handover,
    InboundResult,
    Message,
    MessageDraft,
    StatusChange,
    Ticket,
    TicketChange,
    TicketDraft,
    TicketSummary,
)
from fabriek.services import support
from fabriek.services.paging import PageRequest
from fabriek.services.support.config import SupportOptions
from fabriek.services.support.inbound import receive_email, require_mail_gateway
from fabriek.services.support.report import monthly_report

router = APIRouter(prefix=f"{API_PREFIX}/support", tags=["support"])

# The largest e-mail the inbound handler reads: room for an attachment at the limit, in
# base64 (a third larger), and the text around it.
_MAIL_OVERHEAD_BYTES = 1024 * 1024


def options(ctx: Ctx) -> SupportOptions:
    return SupportOptions.from_settings(ctx.settings)


Options = Annotated[SupportOptions, Depends(options)]


@router.get("/categories", response_model=list[CategoryInfo])
def list_categories(opts: Options, who: Caller) -> list[CategoryInfo]:
    """The categories a ticket can have, who owns each (a hub, or the central desk) and
    what each promises in working days."""
    return support.categories(opts.config)


@router.get("/tickets", response_model=PageOut[TicketSummary])
def list_tickets(
    db: Db,
    who: Caller,
    ctx: Ctx,
    opts: Options,
    page: Annotated[PageRequest, Depends(paging)],
    status_: Annotated[
        list[str] | None,
        Query(alias="status", description="new, triaged, waiting-for-user, resolved, closed, open"),
    ] = None,
    queue: Annotated[str | None, Query(description="a hub's code, or central")] = None,
    category: Annotated[str | None, Query()] = None,
    mine: Annotated[bool, Query(description="only the tickets you opened")] = False,
) -> PageOut[TicketSummary]:
    """The tickets the caller may see, newest first: their own and their projects'; for hub
    staff their hub's queue; for the central desk every ticket."""
    return PageOut.of(
        support.list_tickets(
            db, who, opts.config, ctx.clock(), page, status_, queue, category, mine
        )
    )


@router.post("/tickets", response_model=Ticket, status_code=status.HTTP_201_CREATED)
def open_ticket(body: TicketDraft, db: Db, who: Caller, ctx: Ctx, opts: Options) -> Ticket:
    """Open a ticket, optionally about a job, proposal or dataset of one's own projects
    (with `share_context`, its state, reason, site, last log lines and budget travel with
    it). It goes to the hub of one's organisation's province, or to the central desk for
    the categories it owns."""
    return support.open_ticket(db, who, body, opts, ctx.access, ctx.clock(), ctx.dispatcher)


@router.get("/tickets/{ticket_id}", response_model=Ticket)
def get_ticket(ticket_id: int, db: Db, who: Caller, ctx: Ctx, opts: Options) -> Ticket:
    """One ticket with its conversation, history and service levels (internal notes only
    for the staff handling it)."""
    return support.get_ticket(db, who, ticket_id, opts, ctx.clock())


@router.patch("/tickets/{ticket_id}", response_model=Ticket)
def update_ticket(
    ticket_id: int, body: TicketChange, db: Db, who: Caller, ctx: Ctx, opts: Options
) -> Ticket:
    """Triage: a new priority or category (the staff handling it)."""
    return support.update_ticket(db, who, ticket_id, body, opts, ctx.clock())


@router.post(
    "/tickets/{ticket_id}/messages", response_model=Message, status_code=status.HTTP_201_CREATED
)
def post_message(
    ticket_id: int, body: MessageDraft, db: Db, who: Caller, ctx: Ctx, opts: Options
) -> Message:
    """Reply (e-mailed to the author when the staff write), or leave an internal note (the
    staff handling it; never shown to the user or mailed)."""
    return support.post_message(db, who, ticket_id, body, opts, ctx.clock())


@router.post("/tickets/{ticket_id}/status", response_model=Ticket)
def change_status(
    ticket_id: int, body: StatusChange, db: Db, who: Caller, ctx: Ctx, opts: Options
) -> Ticket:
    """Move the ticket on: the staff handling it any allowed step; its people may close it."""
    return support.change_status(db, who, ticket_id, body, opts, ctx.clock())


@router.post("/tickets/{ticket_id}/handover", response_model=Ticket)
def hand_over(
    ticket_id: int, body: Handover, db: Db, who: Caller, ctx: Ctx, opts: Options
) -> Ticket:
    """Hand the ticket to another hub or to the central desk (the staff handling it)."""
    return support.hand_over(db, who, ticket_id, body, opts, ctx.clock())


async def _body(request: Request) -> AsyncIterator[bytes]:
    try:
        async for piece in request.stream():
            if piece:
                yield piece
    except ClientDisconnect:
        raise InvalidInput("the upload was cut off before its end; nothing was kept") from None


@router.post(
    "/tickets/{ticket_id}/attachments",
    response_model=Attachment,
    status_code=status.HTTP_201_CREATED,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
            "description": "the file as raw bytes, its media type as Content-Type",
        }
    },
)
async def attach(
    ticket_id: int,
    request: Request,
    who: Caller,
    ctx: Ctx,
    name: Annotated[str, Query(min_length=1, max_length=255, description="the file's name")],
    internal: Annotated[bool, Query(description="for the handling staff only")] = False,
    content_type: Annotated[str | None, Header()] = None,
    content_length: Annotated[int | None, Header(ge=0)] = None,
) -> Attachment:
    """Attach a file (its type from Content-Type; the types and the size allowed are the
    server's settings). Over the limit: 413; a type not allowed, or a file that is not what
    its type says: 415. Nothing is kept then."""
    return await support.receive_attachment(
        ctx.sessions, who, ctx.clock, ticket_id, name, media_type_of(content_type), internal,
        content_length, _body(request), options(ctx),
    )  # fmt: skip


@router.get(
    "/tickets/{ticket_id}/attachments/{attachment_id}",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_attachment(
    ticket_id: int, attachment_id: int, db: Db, who: Caller, opts: Options
) -> FileResponse:
    """An attachment's bytes, for those who see the ticket."""
    found = support.open_attachment(db, who, ticket_id, attachment_id, opts)
    return FileResponse(
        found.path,
        media_type=found.media_type,
        filename=found.name,
        headers={"X-Content-SHA256": found.sha256, "X-Content-Type-Options": "nosniff"},
    )


@router.post(
    "/inbound",
    response_model=InboundResult,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"message/rfc822": {"schema": {"type": "string", "format": "binary"}}},
            "description": "one e-mail as the mail server received it (RFC 5322)",
        }
    },
)
async def inbound(request: Request, who: Caller, ctx: Ctx) -> InboundResult:
    """Hand in an e-mail from the support mailbox (the central desk's mail gateway): a
    reply to a ticket's e-mail joins the ticket; anything else is bounced to its sender
    with the reason, and automatic mail is dropped."""
    require_mail_gateway(who)
    opts = options(ctx)
    limit = 2 * opts.attachment_max_bytes + _MAIL_OVERHEAD_BYTES
    raw = bytearray()
    async for piece in _body(request):
        raw.extend(piece)
        if len(raw) > limit:
            raise TooLarge(f"the e-mail is larger than {limit // (1024 * 1024)} MiB; not read")

    def receive() -> InboundResult:
        with ctx.sessions() as session:
            return receive_email(session, who, bytes(raw), opts, ctx.clock())

    return await run_in_threadpool(receive)


@router.get("/report", response_model=SupportReport)
def report(
    db: Db,
    who: Caller,
    ctx: Ctx,
    opts: Options,
    hub: Annotated[str | None, Query(description="a hub's code or central; default: yours")] = None,
    month: Annotated[str | None, Query(description="YYYY-MM; default: this month")] = None,
) -> SupportReport:
    """A desk's month: tickets by category and sector, time to first answer and to
    resolution, service levels broken, expert hours delivered (hub staff: their own hub;
    the central desk: any)."""
    return monthly_report(db, who, hub, month, opts.config, ctx.clock())
