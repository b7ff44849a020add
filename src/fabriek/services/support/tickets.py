"""A support ticket as its people see it: who may see and handle a ticket, reading the values
a caller gives, the list of tickets and one ticket with its conversation, attachments,
history and service-level clocks.

Who sees a ticket: its author, the members of its project, the staff of the desk that holds
it (a hub's staff, or the central desk: the access team and admins). Everyone else is told
it does not exist. Internal notes and internal attachments are for the handling staff only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import asdict, replace
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Select, select, true
from sqlalchemy.orm import Session

from fabriek.domain.calendar import AMSTERDAM
from fabriek.domain.errors import Forbidden, InvalidInput, NotFound
from fabriek.domain.roles import Principal, Role
from fabriek.domain.support.mail import ReplyToken, reply_address
from fabriek.domain.support.routing import CENTRAL, SupportConfig, parse_queue, queue_name
from fabriek.domain.support.service_levels import ServiceClock, Wait, service_clock
from fabriek.domain.support.shapes import (
    Attachment,
    CategoryInfo,
    Message,
    ServiceLevelView,
    Ticket,
    TicketContext,
    TicketEvent,
    TicketSummary,
)
from fabriek.domain.support.tickets import (
    CATEGORY_NAMES,
    OPEN_STATUSES,
    Category,
    Priority,
    Status,
    parse_category,
    ticket_reference,
)
from fabriek.services.notifications.inbox import staff_with_role
from fabriek.services.paging import Page, PageRequest, count_all
from fabriek.services.support.config import SupportOptions
from fabriek.store.tables import (
    MembershipRow,
    OrganisationRow,
    ProjectRow,
    StaffRoleRow,
    SupportAttachmentRow,
    SupportEventRow,
    SupportMessageRow,
    SupportTicketRow,
    UserRow,
)


def is_central_desk(who: Principal) -> bool:
    """The central support desk: the access team and admins, who see every ticket."""
    return who.is_admin or who.has_role(Role.ACCESS_TEAM)


def handles(who: Principal, queue: str) -> bool:
    """Whether the caller is among the staff handling a ticket in `queue`."""
    return is_central_desk(who) or queue in who.scopes(Role.HUB_STAFF)


def _visible(who: Principal) -> ColumnElement[bool]:
    if is_central_desk(who):
        return true()
    own = (SupportTicketRow.author_id == who.user_id) | SupportTicketRow.project_id.in_(
        select(MembershipRow.project_id).where(MembershipRow.user_id == who.user_id)
    )
    hubs = who.scopes(Role.HUB_STAFF)
    return own | SupportTicketRow.queue.in_(hubs) if hubs else own


def ticket_row(session: Session, who: Principal, ticket_id: int) -> SupportTicketRow:
    row = session.scalars(
        select(SupportTicketRow).where(SupportTicketRow.id == ticket_id, _visible(who))
    ).first()
    if row is None:
        raise NotFound("ticket", ticket_reference(ticket_id))
    return row


def require_handler(who: Principal, row: SupportTicketRow, action: str) -> None:
    if not handles(who, row.queue):
        raise Forbidden(
            f"only the staff handling {ticket_reference(row.id)} ({queue_name(row.queue)}) "
            f"and the central desk may {action}"
        )


def desk_staff(session: Session, queue: str) -> list[int]:
    """The people who answer a queue: a hub's staff, or the central desk's access team."""
    if queue == CENTRAL:
        return staff_with_role(session, Role.ACCESS_TEAM)
    return list(
        session.scalars(
            select(StaffRoleRow.user_id)
            .where(StaffRoleRow.role == Role.HUB_STAFF.value, StaffRoleRow.scope == queue)
            .distinct()
        )
    )


def participants(session: Session, row: SupportTicketRow) -> set[int]:
    """The user's side of a ticket: its author and its project's members."""
    people = {row.author_id}
    if row.project_id is not None:
        people.update(
            session.scalars(
                select(MembershipRow.user_id).where(MembershipRow.project_id == row.project_id)
            )
        )
    return people


# --- reading values ---------------------------------------------------------------------------


def read_category(text: str, field: str = "category") -> Category:
    try:
        return parse_category(text)
    except ValueError as bad:
        raise InvalidInput.on(field, str(bad)) from None


def read_priority(text: str) -> Priority:
    try:
        return Priority(text.strip().lower())
    except ValueError:
        known = ", ".join(p.value for p in Priority)
        raise InvalidInput.on("priority", f"no priority {text!r}; known: {known}") from None


def read_status(text: str, field: str = "status") -> Status:
    try:
        return Status(text.strip().lower())
    except ValueError:
        known = ", ".join(s.value for s in Status)
        raise InvalidInput.on(field, f"no status {text!r}; known: {known}") from None


def categories(config: SupportConfig) -> list[CategoryInfo]:
    """Every category with its owner and its service level."""
    return [
        CategoryInfo(
            code=c,
            name=CATEGORY_NAMES[c],
            owner=CENTRAL if c in config.central else "hub",
            first_answer_working_days=config.levels[c].first_answer_working_days,
            resolution_working_days=config.levels[c].resolution_working_days,
        )
        for c in Category
    ]


def waits_of(session: Session, ticket_ids: Collection[int]) -> dict[int, list[Wait]]:
    """The stretches each ticket waited for the user, from its status history."""
    found: dict[int, list[Wait]] = defaultdict(list)
    if not ticket_ids:
        return found
    rows = session.execute(
        select(SupportEventRow.ticket_id, SupportEventRow.at, SupportEventRow.from_value,
               SupportEventRow.to_value)
        .where(SupportEventRow.ticket_id.in_(list(ticket_ids)), SupportEventRow.kind == "status")
        .order_by(SupportEventRow.ticket_id, SupportEventRow.at, SupportEventRow.id)
    )  # fmt: skip
    started: dict[int, datetime] = {}
    for ticket_id, at, before, after in rows:
        if before == Status.WAITING.value and ticket_id in started:
            found[ticket_id].append(Wait(started.pop(ticket_id), at))
        if after == Status.WAITING.value:
            started[ticket_id] = at
    for ticket_id, at in started.items():
        found[ticket_id].append(Wait(at, None))
    return found


def clock_of(
    row: SupportTicketRow, waits: Iterable[Wait], config: SupportConfig, now: datetime
) -> ServiceClock:
    """A ticket's service-level clocks at `now`. A breach once escalated stays a breach,
    whatever clock reads it later."""
    level = config.levels[Category(row.category)]
    clock = service_clock(level, row.created_at, row.first_answer_at, row.resolved_at, waits, now)
    return replace(
        clock,
        first_answer_breached=clock.first_answer_breached or row.first_answer_breach_at is not None,
        resolution_breached=clock.resolution_breached or row.resolution_breach_at is not None,
    )


def _summary(
    row: SupportTicketRow, author: str, project: str | None, clock: ServiceClock
) -> TicketSummary:
    return TicketSummary(
        id=row.id, reference=ticket_reference(row.id), subject=row.subject,
        category=Category(row.category), priority=Priority(row.priority),
        status=Status(row.status), queue=row.queue, queue_name=queue_name(row.queue),
        author=author, project=project, about=row.about, created_at=row.created_at,
        updated_at=row.updated_at, first_answer_due=clock.first_answer_due,
        resolution_due=clock.resolution_due,
        breached=clock.first_answer_breached or clock.resolution_breached,
    )  # fmt: skip


def _query() -> Select[SupportTicketRow, str, str | None]:
    return (
        select(SupportTicketRow, UserRow.username, ProjectRow.name)
        .join(UserRow, UserRow.id == SupportTicketRow.author_id)
        .outerjoin(ProjectRow, ProjectRow.id == SupportTicketRow.project_id)
    )


def list_tickets(
    session: Session,
    who: Principal,
    config: SupportConfig,
    now: datetime,
    page: PageRequest,
    statuses: list[str] | None = None,
    queue: str | None = None,
    category: str | None = None,
    mine: bool = False,
) -> Page[TicketSummary]:
    """The tickets the caller may see, newest first: `mine` only those they opened;
    `statuses` (or `open`: new, triaged and waiting) and `queue` narrow the list."""
    query = _query().where(_visible(who))
    if statuses:
        wanted: set[str] = set()
        for text in statuses:
            if text.strip().lower() == "open":
                wanted.update(s.value for s in OPEN_STATUSES)
            else:
                wanted.add(read_status(text).value)
        query = query.where(SupportTicketRow.status.in_(sorted(wanted)))
    if queue:
        try:
            query = query.where(SupportTicketRow.queue == parse_queue(queue))
        except ValueError as bad:
            raise InvalidInput.on("queue", str(bad)) from None
    if category:
        query = query.where(SupportTicketRow.category == read_category(category).value)
    if mine:
        query = query.where(SupportTicketRow.author_id == who.user_id)
    total = count_all(session, query)
    rows = session.execute(
        query.order_by(SupportTicketRow.id.desc()).limit(page.limit).offset(page.offset)
    ).all()
    waits = waits_of(session, [r[0].id for r in rows])
    items = [
        _summary(row, author, project, clock_of(row, waits.get(row.id, []), config, now))
        for row, author, project in rows
    ]  # fmt: skip
    return Page(items, total, page.limit, page.offset)


def usernames(session: Session, ids: Iterable[int | None]) -> dict[int, tuple[str, str]]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {
        i: (u, n)
        for i, u, n in session.execute(
            select(UserRow.id, UserRow.username, UserRow.full_name).where(UserRow.id.in_(wanted))
        )
    }


def ticket_view(
    session: Session, who: Principal, row: SupportTicketRow, options: SupportOptions, now: datetime
) -> Ticket:
    """The ticket as the caller may see it (internal parts only for its handlers)."""
    handling = handles(who, row.queue)
    messages = list(
        session.scalars(
            select(SupportMessageRow)
            .where(SupportMessageRow.ticket_id == row.id)
            .where(true() if handling else SupportMessageRow.internal.is_(False))
            .order_by(SupportMessageRow.created_at, SupportMessageRow.id)
        )
    )
    files = list(
        session.scalars(
            select(SupportAttachmentRow)
            .where(SupportAttachmentRow.ticket_id == row.id)
            .where(true() if handling else SupportAttachmentRow.internal.is_(False))
            .order_by(SupportAttachmentRow.id)
        )
    )
    events = list(
        session.scalars(
            select(SupportEventRow)
            .where(SupportEventRow.ticket_id == row.id)
            .order_by(SupportEventRow.at, SupportEventRow.id)
        )
    )
    people = usernames(
        session,
        [row.author_id, *(m.author_id for m in messages), *(f.uploaded_by for f in files),
         *(e.actor_id for e in events)],
    )  # fmt: skip
    project = session.get(ProjectRow, row.project_id) if row.project_id else None
    organisation = (
        session.get(OrganisationRow, row.organisation_id) if row.organisation_id else None
    )
    waits = waits_of(session, [row.id]).get(row.id, [])
    clock = clock_of(row, waits, options.config, now)
    author = people.get(row.author_id, ("?", "?"))[0]
    token = ReplyToken(row.id, row.reply_key)
    return Ticket(
        **_summary(row, author, project.name if project else None, clock).model_dump(),
        body=row.body,
        sector=row.sector,
        organisation=organisation.name if organisation else None,
        share_context=row.share_context,
        context=TicketContext.model_validate(row.context) if row.context else None,
        service_level=_service_level_view(row, clock, options.config),
        messages=[_message_view(m, people) for m in messages],
        attachments=[attachment_view(f, people) for f in files],
        history=[_event_view(e, people, handling) for e in events],
        handling=handling,
        reply_address=reply_address(options.support_address, token)
        if Status(row.status) is not Status.CLOSED
        else None,
    )


def _service_level_view(
    row: SupportTicketRow, clock: ServiceClock, config: SupportConfig
) -> ServiceLevelView:
    level = config.levels[Category(row.category)]
    escalations = [t for t in (row.first_answer_breach_at, row.resolution_breach_at) if t]
    # The view is the clock (each of its fields, by name) and the promise it runs against.
    return ServiceLevelView(
        **asdict(clock),
        first_answer_working_days=level.first_answer_working_days,
        resolution_working_days=level.resolution_working_days,
        escalated_at=min(escalations) if escalations else None,
    )


def _message_view(m: SupportMessageRow, people: dict[int, tuple[str, str]]) -> Message:
    person = people.get(m.author_id) if m.author_id is not None else None
    return Message(
        id=m.id,
        author=person[0] if person else None,
        author_name=person[1] if person else "Fabriek",
        staff=m.staff,
        internal=m.internal,
        via=m.via,
        body=m.body,
        created_at=m.created_at,
    )


def _event_view(
    e: SupportEventRow, people: dict[int, tuple[str, str]], handling: bool
) -> TicketEvent:
    # A handover's note is the staff's word to the next desk, not the user's to read.
    return TicketEvent(
        at=e.at,
        kind=e.kind,
        by=people[e.actor_id][0] if e.actor_id in people else None,
        from_value=e.from_value,
        to_value=e.to_value,
        note=e.note if handling or e.kind != "handover" else None,
    )


def attachment_view(row: SupportAttachmentRow, people: dict[int, tuple[str, str]]) -> Attachment:
    return Attachment(
        id=row.id, name=row.name, media_type=row.media_type, size_bytes=row.size_bytes,
        sha256=row.sha256, internal=row.internal,
        uploaded_by=people.get(row.uploaded_by, ("?", "?"))[0], uploaded_at=row.uploaded_at,
    )  # fmt: skip


def get_ticket(
    session: Session, who: Principal, ticket_id: int, options: SupportOptions, now: datetime
) -> Ticket:
    return ticket_view(session, who, ticket_row(session, who, ticket_id), options, now)


def record_event(
    session: Session,
    row: SupportTicketRow,
    kind: str,
    now: datetime,
    actor_id: int | None,
    before: str | None,
    after: str | None,
    note: str | None = None,
) -> None:
    session.add(
        SupportEventRow(ticket_id=row.id, at=now, actor_id=actor_id, kind=kind,
                        from_value=before, to_value=after, note=note)
    )  # fmt: skip


def due_text(moment: datetime) -> str:
    """A due moment as people say it: a term ending at midnight is 'the end of' its day."""
    local = moment.astimezone(AMSTERDAM)
    if local.hour == local.minute == local.second == 0:
        return f"the end of {local - timedelta(days=1):%A %d %B %Y} (Amsterdam time)"
    return f"{local:%A %d %B %Y %H:%M} (Amsterdam time)"
