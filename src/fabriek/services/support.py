"""The support centre's tickets: opening one (routed to a desk, with the context the user
consents to share), the conversation and its internal notes, status, triage and handovers,
attachments on disk, and the periodic chores (broken service levels escalated, resolved
tickets closed).

Who sees a ticket: its author, the members of its project, the staff of the desk that holds
it (a hub's staff, or the central desk: the access team and admins). Everyone else is told
it does not exist. Internal notes and internal attachments are for the handling staff only.
"""

from __future__ import annotations

import codecs
import hashlib
import secrets
import uuid
from collections import defaultdict
from collections.abc import AsyncIterable, Callable, Collection, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import anyio
from sqlalchemy import ColumnElement, Select, func, or_, select, true
from sqlalchemy.orm import Session, sessionmaker

from fabriek.domain.calendar import AMSTERDAM
from fabriek.domain.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    TooLarge,
    UnsupportedType,
)
from fabriek.domain.geography import Province
from fabriek.domain.notifications import NotificationKind
from fabriek.domain.roles import Principal, Role
from fabriek.domain.support.attachments import (
    check_attachment_start,
    check_attachment_type,
    is_text_type,
    parse_media_types,
    safe_filename,
)
from fabriek.domain.support.mail import ReplyToken, reply_address
from fabriek.domain.support.routing import CENTRAL, SupportConfig, parse_queue, queue_name, route
from fabriek.domain.support.service_levels import ServiceClock, Wait, auto_close_due, service_clock
from fabriek.domain.support.shapes import (
    Attachment,
    BudgetContext,
    CategoryInfo,
    DatasetContext,
    Handover,
    JobContext,
    Message,
    MessageDraft,
    ProposalContext,
    ServiceLevelView,
    StatusChange,
    Ticket,
    TicketChange,
    TicketContext,
    TicketDraft,
    TicketEvent,
    TicketSummary,
)
from fabriek.domain.support.tickets import (
    CATEGORY_NAMES,
    OPEN_STATUSES,
    TRANSITIONS,
    USER_MAY_SET,
    About,
    AboutKind,
    Category,
    Priority,
    Status,
    after_staff_reply,
    after_user_reply,
    may_move,
    parse_about,
    parse_category,
    ticket_reference,
)
from fabriek.domain.tracks import AccessConfig
from fabriek.engines.base import LogStream
from fabriek.services import audit
from fabriek.services.allocations import budgets
from fabriek.services.dispatch import Dispatcher
from fabriek.services.job_output import read_tail
from fabriek.services.notifications import notify, notify_once, staff_with_role
from fabriek.services.paging import Page, PageRequest, count_all
from fabriek.services.projects import may_see_project
from fabriek.services.support_config import load_support_config
from fabriek.services.support_outbox import queue_ticket_mail
from fabriek.settings import Settings
from fabriek.store.tables import (
    AllocationRow,
    CallRow,
    DatasetRow,
    DatasetVersionRow,
    JobRow,
    MembershipRow,
    OrganisationRow,
    ProjectRow,
    ProposalRow,
    SiteRow,
    StaffRoleRow,
    SupportAttachmentRow,
    SupportEventRow,
    SupportMessageRow,
    SupportTicketRow,
    UserRow,
)

# The last lines of a job's output that travel with a ticket (each stream), and how much of
# the output's end is read to find them.
LOG_LINES = 20
_LOG_TAIL_BYTES = 8192
MIB = 1024 * 1024


@dataclass(frozen=True)
class SupportOptions:
    """What the support services need of the server's settings."""

    config: SupportConfig
    support_address: str
    attachments_dir: Path
    attachment_max_bytes: int
    attachment_types: frozenset[str]

    @classmethod
    def from_settings(cls, settings: Settings) -> SupportOptions:
        domain = settings.smtp_from.rpartition("@")[2] or "localhost"
        return cls(
            config=load_support_config(settings.support_file),
            support_address=settings.support_address or f"support@{domain}",
            attachments_dir=settings.state_dir / "support" / "attachments",
            attachment_max_bytes=int(settings.support_attachment_max_mib * MIB),
            attachment_types=parse_media_types(settings.support_attachment_types),
        )


# --- who may do what ------------------------------------------------------------------------


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


def _ticket_row(session: Session, who: Principal, ticket_id: int) -> SupportTicketRow:
    row = session.scalars(
        select(SupportTicketRow).where(SupportTicketRow.id == ticket_id, _visible(who))
    ).first()
    if row is None:
        raise NotFound("ticket", ticket_reference(ticket_id))
    return row


def _require_handler(who: Principal, row: SupportTicketRow, action: str) -> None:
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


def _category(text: str, field: str = "category") -> Category:
    try:
        return parse_category(text)
    except ValueError as bad:
        raise InvalidInput.on(field, str(bad)) from None


def _priority(text: str) -> Priority:
    try:
        return Priority(text.strip().lower())
    except ValueError:
        known = ", ".join(p.value for p in Priority)
        raise InvalidInput.on("priority", f"no priority {text!r}; known: {known}") from None


def _status(text: str, field: str = "status") -> Status:
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


# --- what a ticket is about, and its context ---------------------------------------------------


@dataclass(frozen=True)
class _Subject:
    """The object a ticket is about, found and checked: its project and what to attach."""

    about: About
    project_id: int
    project: str
    context: Callable[[], TicketContext]


def _require_own(
    session: Session, who: Principal, what: str, project_id: int, project: str
) -> None:
    """The caller must be a member of the object's project; one who cannot see the project
    is told it does not exist, one who can (their hub's staff) that it is not theirs."""
    if who.in_project(project_id):
        return
    if not may_see_project(session, who, project_id):
        raise NotFound(*what.split(" ", 1))
    raise Forbidden(
        f"{what} belongs to project {project}, which you are not a member of: open a ticket "
        "about your own projects' jobs, proposals and datasets"
    )


def _lines(data: bytes) -> list[str]:
    text = data.decode("utf-8", errors="replace")
    return [line.rstrip() for line in text.splitlines() if line.strip()][-LOG_LINES:]


def _job_subject(
    session: Session,
    who: Principal,
    about: About,
    access: AccessConfig,
    dispatcher: Dispatcher | None,
    now: datetime,
) -> _Subject:
    job_id = int(about.ref)
    found = session.execute(
        select(JobRow, ProjectRow.name, SiteRow.name)
        .join(ProjectRow, ProjectRow.id == JobRow.project_id)
        .outerjoin(SiteRow, SiteRow.id == JobRow.site_id)
        .where(JobRow.id == job_id)
    ).first()
    if found is None:
        raise NotFound("job", job_id)
    job, project, site = found
    _require_own(session, who, f"job {job_id}", job.project_id, project)

    def context() -> TicketContext:
        tails: dict[LogStream, list[str]] = {}
        for stream in LogStream:
            tails[stream] = []
            if dispatcher is not None:
                _, data, _ = read_tail(session, who, job_id, stream, _LOG_TAIL_BYTES, dispatcher)
                tails[stream] = _lines(data)
        return TicketContext(
            captured_at=now,
            job=JobContext(
                id=job.id, name=job.name, project=project, state=job.state, reason=job.reason,
                site=site, exit_code=job.exit_code, gpus=job.gpus,
                gpu_type=job.placed_gpu_type or job.gpu_type, submitted_at=job.submitted_at,
                started_at=job.started_at, ended_at=job.ended_at,
            ),
            log_lines=tails[LogStream.STDOUT],
            error_lines=tails[LogStream.STDERR],
            budget=_budget(session, job.allocation_id, job.project_id, access, now),
        )  # fmt: skip

    return _Subject(about, job.project_id, project, context)


def _budget(
    session: Session,
    allocation_id: int | None,
    project_id: int,
    access: AccessConfig,
    now: datetime,
) -> BudgetContext | None:
    """The allocation the job was charged to; for a job that never started, the project's
    current one (active, ending first)."""
    if allocation_id is not None:
        row = session.get(AllocationRow, allocation_id)
    else:
        row = session.scalars(
            select(AllocationRow)
            .where(
                AllocationRow.project_id == project_id,
                AllocationRow.starts_at <= now,
                AllocationRow.ends_at > now,
            )
            .order_by(AllocationRow.ends_at, AllocationRow.id)
        ).first()
    if row is None:
        return None
    budget = budgets(session, now, access, [row.id])[row.id]
    return BudgetContext(
        allocation_id=row.id,
        track=row.track,
        awarded_gpu_hours=round(budget.awarded.value, 3),
        consumed_gpu_hours=round(budget.consumed.value, 3),
        committed_gpu_hours=round(budget.committed.value, 3),
        remaining_gpu_hours=round(budget.remaining.value, 3),
        ends_at=row.ends_at,
    )


def _proposal_subject(session: Session, who: Principal, about: About, now: datetime) -> _Subject:
    proposal_id = int(about.ref)
    found = session.execute(
        select(ProposalRow, ProjectRow.name, CallRow.code, CallRow.track)
        .join(ProjectRow, ProjectRow.id == ProposalRow.project_id)
        .join(CallRow, CallRow.id == ProposalRow.call_id)
        .where(ProposalRow.id == proposal_id)
    ).first()
    if found is None:
        raise NotFound("proposal", proposal_id)
    proposal, project, call, track = found
    _require_own(session, who, f"proposal {proposal_id}", proposal.project_id, project)

    def context() -> TicketContext:
        return TicketContext(
            captured_at=now,
            proposal=ProposalContext(
                id=proposal.id, title=proposal.title, state=proposal.state, call=call,
                track=track, submitted_at=proposal.submitted_at, decided_at=proposal.decided_at,
            ),
        )  # fmt: skip

    return _Subject(about, proposal.project_id, project, context)


def _dataset_subject(session: Session, who: Principal, about: About, now: datetime) -> _Subject:
    project_name, name = about.ref.split("/", 1)
    found = session.execute(
        select(DatasetRow, ProjectRow.name)
        .join(ProjectRow, ProjectRow.id == DatasetRow.project_id)
        .where(ProjectRow.name == project_name, DatasetRow.name == name)
    ).first()
    if found is None:
        raise NotFound("dataset", about.ref)
    dataset, project = found
    _require_own(session, who, f"dataset {about.ref}", dataset.project_id, project)

    def context() -> TicketContext:
        versions = session.scalar(
            select(func.count()).where(DatasetVersionRow.dataset_id == dataset.id)
        )
        return TicketContext(
            captured_at=now,
            dataset=DatasetContext(
                project=project, name=dataset.name, classification=dataset.classification,
                residency=dataset.residency, versions=versions or 0,
            ),
        )  # fmt: skip

    return _Subject(about, dataset.project_id, project, context)


def _project_ref(session: Session, who: Principal, ref: str) -> tuple[int, str]:
    query = select(ProjectRow.id, ProjectRow.name)
    query = (
        query.where(ProjectRow.id == int(ref))
        if ref.isdigit()
        else query.where(ProjectRow.name == ref)
    )
    found = session.execute(query).first()
    if found is None:
        raise NotFound("project", ref)
    project_id, name = found
    _require_own(session, who, f"project {name}", project_id, name)
    return project_id, name


# --- the views --------------------------------------------------------------------------------


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
                wanted.add(_status(text).value)
        query = query.where(SupportTicketRow.status.in_(sorted(wanted)))
    if queue:
        try:
            query = query.where(SupportTicketRow.queue == parse_queue(queue))
        except ValueError as bad:
            raise InvalidInput.on("queue", str(bad)) from None
    if category:
        query = query.where(SupportTicketRow.category == _category(category).value)
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


def _usernames(session: Session, ids: Iterable[int | None]) -> dict[int, tuple[str, str]]:
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
    people = _usernames(
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
    level = options.config.levels[Category(row.category)]
    escalations = [t for t in (row.first_answer_breach_at, row.resolution_breach_at) if t]
    author = people.get(row.author_id, ("?", "?"))[0]
    token = ReplyToken(row.id, row.reply_key)
    return Ticket(
        **_summary(row, author, project.name if project else None, clock).model_dump(),
        body=row.body,
        sector=row.sector,
        organisation=organisation.name if organisation else None,
        share_context=row.share_context,
        context=TicketContext.model_validate(row.context) if row.context else None,
        service_level=ServiceLevelView(
            first_answer_working_days=level.first_answer_working_days,
            first_answer_due=clock.first_answer_due,
            first_answer_at=clock.first_answer_at,
            first_answer_breached=clock.first_answer_breached,
            resolution_working_days=level.resolution_working_days,
            resolution_due=clock.resolution_due,
            resolved_at=clock.resolved_at,
            resolution_breached=clock.resolution_breached,
            paused_working_days=clock.paused_working_days,
            escalated_at=min(escalations) if escalations else None,
        ),
        messages=[
            Message(
                id=m.id,
                author=people[m.author_id][0] if m.author_id in people else None,
                author_name=people[m.author_id][1] if m.author_id in people else "Fabriek",
                staff=m.staff,
                internal=m.internal,
                via=m.via,
                body=m.body,
                created_at=m.created_at,
            )
            for m in messages
        ],
        attachments=[_attachment(f, people) for f in files],
        history=[
            TicketEvent(
                at=e.at,
                kind=e.kind,
                by=people[e.actor_id][0] if e.actor_id in people else None,
                from_value=e.from_value,
                to_value=e.to_value,
                note=e.note if handling or e.kind != "handover" else None,
            )
            for e in events
        ],
        handling=handling,
        reply_address=reply_address(options.support_address, token)
        if Status(row.status) is not Status.CLOSED
        else None,
    )


def _attachment(row: SupportAttachmentRow, people: dict[int, tuple[str, str]]) -> Attachment:
    return Attachment(
        id=row.id, name=row.name, media_type=row.media_type, size_bytes=row.size_bytes,
        sha256=row.sha256, internal=row.internal,
        uploaded_by=people.get(row.uploaded_by, ("?", "?"))[0], uploaded_at=row.uploaded_at,
    )  # fmt: skip


def get_ticket(
    session: Session, who: Principal, ticket_id: int, options: SupportOptions, now: datetime
) -> Ticket:
    return ticket_view(session, who, _ticket_row(session, who, ticket_id), options, now)


# --- opening a ticket -------------------------------------------------------------------------


def _event(
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


def _due_text(moment: datetime) -> str:
    """A due moment as people say it: a term ending at midnight is 'the end of' its day."""
    local = moment.astimezone(AMSTERDAM)
    if local.hour == local.minute == local.second == 0:
        return f"the end of {local - timedelta(days=1):%A %d %B %Y} (Amsterdam time)"
    return f"{local:%A %d %B %Y %H:%M} (Amsterdam time)"


def open_ticket(
    session: Session,
    who: Principal,
    draft: TicketDraft,
    options: SupportOptions,
    access: AccessConfig,
    now: datetime,
    dispatcher: Dispatcher | None = None,
) -> Ticket:
    """Open a ticket: routed to the central desk for the categories it owns, else to the
    hub of the author's organisation's province; about one of the author's own jobs,
    proposals or datasets if asked, with that object's context when the author consents.
    The author gets an acknowledgement by e-mail (queued), the desk's staff a notification."""
    category = _category(draft.category)
    priority = _priority(draft.priority)
    subject: _Subject | None = None
    if draft.about:
        try:
            about = parse_about(draft.about)
        except ValueError as bad:
            raise InvalidInput.on("about", str(bad)) from None
        if about.kind is AboutKind.JOB:
            subject = _job_subject(session, who, about, access, dispatcher, now)
        elif about.kind is AboutKind.PROPOSAL:
            subject = _proposal_subject(session, who, about, now)
        else:
            subject = _dataset_subject(session, who, about, now)
    elif draft.share_context:
        raise InvalidInput.on(
            "share_context", "there is no context to share: say what it is about (about)"
        )
    project_id = subject.project_id if subject else None
    if draft.project:
        chosen, name = _project_ref(session, who, draft.project.strip())
        if subject is not None and chosen != subject.project_id:
            raise InvalidInput.on(
                "project", f"{subject.about} is of project {subject.project}, not {name}"
            )
        project_id = chosen
    user = session.get(UserRow, who.user_id)
    assert user is not None  # the caller was authenticated from this row
    organisation = (
        session.get(OrganisationRow, user.organisation_id) if user.organisation_id else None
    )
    province = Province(organisation.province) if organisation else None
    queue = route(category, province, options.config)
    context = subject.context() if subject and draft.share_context else None
    row = SupportTicketRow(
        subject=" ".join(draft.subject.split()), body=draft.body.strip(), category=category.value,
        priority=priority.value, status=Status.NEW.value, queue=queue, author_id=who.user_id,
        project_id=project_id, about=str(subject.about) if subject else None,
        organisation_id=organisation.id if organisation else None,
        sector=organisation.kind if organisation else None, share_context=draft.share_context,
        context=context.model_dump(mode="json") if context else None,
        reply_key=secrets.token_hex(8), created_at=now, updated_at=now,
    )  # fmt: skip
    session.add(row)
    session.flush()
    _event(session, row, "opened", now, who.user_id, None, queue)
    reference = ticket_reference(row.id)
    clock = clock_of(row, [], options.config, now)
    level = options.config.levels[category]
    days = level.first_answer_working_days
    queue_ticket_mail(
        session, options.support_address, row, "ack", user.email, row.subject,
        f"Dear {user.full_name},\n\nYour ticket {reference} reached {queue_name(queue)}. "
        f"We answer within {days} working day{'s' if days != 1 else ''}, by "
        f"{_due_text(clock.first_answer_due)}.\n\n"
        "Reply to this e-mail to add to the ticket; keep the address it came from.\n"
        f"Follow it with `fabriek support show {reference}`.\n",
        now,
    )  # fmt: skip
    about_text = f" about {row.about}" if row.about else ""
    notify(
        session, desk_staff(session, queue), NotificationKind.SUPPORT_TICKET.value,
        f"{reference}: {row.subject}",
        f"{user.full_name} ({user.username}) opened {reference}{about_text} in "
        f"{CATEGORY_NAMES[category]}, priority {priority.value}. First answer due by "
        f"{_due_text(clock.first_answer_due)}.\n\nSee it with `fabriek support show {reference}`.",
        now,
    )  # fmt: skip
    session.commit()
    return ticket_view(session, who, row, options, now)


# --- the conversation -------------------------------------------------------------------------


def _move(
    session: Session,
    row: SupportTicketRow,
    target: Status,
    now: datetime,
    actor_id: int | None,
    note: str | None = None,
) -> None:
    """Move a ticket to `target` (already checked), keeping the clocks' moments true."""
    current = Status(row.status)
    if target is current:
        return
    if target is Status.RESOLVED or (target is Status.CLOSED and row.resolved_at is None):
        row.resolved_at = now
    if target is Status.CLOSED:
        row.closed_at = now
    if target in OPEN_STATUSES:
        row.resolved_at = None
    row.status = target.value
    row.updated_at = now
    _event(session, row, "status", now, actor_id, current.value, target.value, note)


def _check_move(row: SupportTicketRow, target: Status) -> None:
    current = Status(row.status)
    if target is not current and not may_move(current, target):
        options = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "nothing"
        raise Conflict(f"{ticket_reference(row.id)} is {current.value}; it may go to: {options}")


def _closed_conflict(row: SupportTicketRow) -> Conflict:
    reference = ticket_reference(row.id)
    return Conflict(
        f"{reference} is closed and takes no more replies: open a new ticket "
        f"(`fabriek support new`) and mention {reference}"
    )


def add_reply(
    session: Session,
    options: SupportOptions,
    row: SupportTicketRow,
    author: UserRow,
    staff: bool,
    body: str,
    via: str,
    now: datetime,
    *,
    internal: bool = False,
    status: Status | None = None,
    email_message_id: str | None = None,
) -> SupportMessageRow:
    """Add a message to an open ticket and do what it sets off: a staff reply is the first
    answer (if none came yet), moves a new ticket on and is e-mailed to the author; a
    user's reply hands the turn back to the staff and tells them. An internal note does
    nothing else. Not committed."""
    message = SupportMessageRow(
        ticket_id=row.id, author_id=author.id, staff=staff, internal=internal, via=via,
        body=body.strip(), email_message_id=email_message_id, created_at=now,
    )  # fmt: skip
    session.add(message)
    row.updated_at = now
    reference = ticket_reference(row.id)
    if internal:
        return message
    if staff:
        if row.first_answer_at is None:
            row.first_answer_at = now
        _move(session, row, after_staff_reply(Status(row.status)), now, author.id)
        if status is not None:
            _move(session, row, status, now, author.id)
        recipient = session.get(UserRow, row.author_id)
        if recipient is not None and recipient.id != author.id:
            ending = {
                Status.WAITING: "We wait for your answer: reply to this e-mail.",
                Status.RESOLVED: "We consider the question answered. Reply to this e-mail "
                "if it is not, and the ticket opens again.",
                Status.CLOSED: "The ticket is closed; for anything new, open a new ticket.",
            }.get(Status(row.status), "Reply to this e-mail to answer.")
            queue_ticket_mail(
                session, options.support_address, row, "reply", recipient.email, row.subject,
                f"{author.full_name} ({queue_name(row.queue)}) wrote on {reference}:\n\n"
                f"{message.body}\n\n-- \n{ending}\n",
                now,
            )  # fmt: skip
        return message
    _move(session, row, after_user_reply(Status(row.status)), now, author.id)
    if status is not None:
        _move(session, row, status, now, author.id)
    excerpt = message.body if len(message.body) <= 1000 else message.body[:1000] + " ..."
    notify(
        session, [u for u in desk_staff(session, row.queue) if u != author.id],
        NotificationKind.SUPPORT_REPLY.value,
        f"{reference}: {author.full_name} replied",
        f"{author.full_name} ({author.username}) replied on {reference} ({row.subject}) "
        f"by {'e-mail' if via == 'email' else 'the API'}:\n\n{excerpt}\n\n"
        f"See it with `fabriek support show {reference}`.",
        now,
    )  # fmt: skip
    return message


def post_message(
    session: Session,
    who: Principal,
    ticket_id: int,
    draft: MessageDraft,
    options: SupportOptions,
    now: datetime,
) -> Message:
    """Reply to a ticket, or (its handling staff) leave an internal note; a reply may move
    the ticket on (`status`: the staff any allowed step, the user only `closed`)."""
    row = _ticket_row(session, who, ticket_id)
    handling = handles(who, row.queue)
    if draft.internal and not handling:
        raise Forbidden(
            f"internal notes are for the staff handling {ticket_reference(row.id)} "
            f"({queue_name(row.queue)}); write a reply instead"
        )
    if Status(row.status) is Status.CLOSED:
        raise _closed_conflict(row)
    staff = handling and row.author_id != who.user_id
    target = _status(draft.status) if draft.status else None
    if target is not None:
        if draft.internal:
            raise InvalidInput.on("status", "an internal note does not move a ticket on")
        if not staff and target not in USER_MAY_SET:
            raise Forbidden(
                f"only the staff handling {ticket_reference(row.id)} may set it to "
                f"{target.value}; you may close it"
            )
    author = session.get(UserRow, who.user_id)
    assert author is not None
    if target is not None:
        # Checked from where the reply itself leaves the ticket.
        after = (
            after_staff_reply(Status(row.status)) if staff else after_user_reply(Status(row.status))
        )
        if target is not after and not may_move(after, target):
            options_text = ", ".join(sorted(s.value for s in TRANSITIONS[after]))
            raise Conflict(f"{ticket_reference(row.id)} cannot go from {after.value} to "
                           f"{target.value}; it may go to: {options_text}")  # fmt: skip
    message = add_reply(
        session, options, row, author, staff, draft.body, "api", now, internal=draft.internal,
        status=target,
    )  # fmt: skip
    session.commit()
    return Message(
        id=message.id, author=author.username, author_name=author.full_name, staff=message.staff,
        internal=message.internal, via=message.via, body=message.body,
        created_at=message.created_at,
    )  # fmt: skip


def change_status(
    session: Session,
    who: Principal,
    ticket_id: int,
    change: StatusChange,
    options: SupportOptions,
    now: datetime,
) -> Ticket:
    """Move a ticket on: its handling staff any allowed step; its author and project members
    may close it. Setting the status it has already changes nothing."""
    row = _ticket_row(session, who, ticket_id)
    target = _status(change.status)
    handling = handles(who, row.queue)
    if not handling and target not in USER_MAY_SET:
        raise Forbidden(
            f"only the staff handling {ticket_reference(row.id)} ({queue_name(row.queue)}) "
            f"may set it to {target.value}; you may close it"
        )
    _check_move(row, target)
    if target is not Status(row.status):
        _move(session, row, target, now, who.user_id, change.note)
        recipient = session.get(UserRow, row.author_id)
        if (
            handling
            and recipient is not None
            and recipient.id != who.user_id
            and target in {Status.RESOLVED, Status.CLOSED}
        ):
            note = f"\n\n{change.note.strip()}" if change.note else ""
            queue_ticket_mail(
                session, options.support_address, row, "status", recipient.email, row.subject,
                f"{ticket_reference(row.id)} is now {target.value}.{note}\n\n"
                + ("Reply to this e-mail if the question is not answered, and the ticket "
                   "opens again.\n" if target is Status.RESOLVED else ""),
                now,
            )  # fmt: skip
        session.commit()
    return ticket_view(session, who, row, options, now)


def hand_over(
    session: Session,
    who: Principal,
    ticket_id: int,
    handover: Handover,
    options: SupportOptions,
    now: datetime,
) -> Ticket:
    """Hand a ticket to another hub or to the central desk (its handling staff); recorded in
    the ticket's history and the audit trail, and the new desk's staff are told."""
    row = _ticket_row(session, who, ticket_id)
    _require_handler(who, row, "hand it over")
    try:
        target = parse_queue(handover.to)
    except ValueError as bad:
        raise InvalidInput.on("to", str(bad)) from None
    reference = ticket_reference(row.id)
    if Status(row.status) is Status.CLOSED:
        raise Conflict(f"{reference} is closed; there is nothing left to hand over")
    if target == row.queue:
        raise Conflict(f"{reference} is already with {queue_name(target)}")
    before = row.queue
    row.queue = target
    row.updated_at = now
    note = handover.note.strip() if handover.note else None
    _event(session, row, "handover", now, who.user_id, before, target, note)
    audit.record_admin(
        session, who, now, "ticket-handover", target=f"ticket:{reference}",
        project_id=row.project_id, from_desk=before, to_desk=target, note=note,
    )  # fmt: skip
    why = f"\n\nTheir note: {note}" if note else ""
    notify(
        session, desk_staff(session, target), NotificationKind.SUPPORT_TICKET.value,
        f"{reference} was handed to {queue_name(target)}: {row.subject}",
        f"{who.username} handed {reference} from {queue_name(before)} to "
        f"{queue_name(target)}.{why}\n\nSee it with `fabriek support show {reference}`.",
        now,
    )  # fmt: skip
    session.commit()
    return ticket_view(session, who, row, options, now)


def update_ticket(
    session: Session,
    who: Principal,
    ticket_id: int,
    change: TicketChange,
    options: SupportOptions,
    now: datetime,
) -> Ticket:
    """Triage (its handling staff): a new priority or category. A new category brings its
    own service level; the ticket stays at its desk (hand it over to move it)."""
    row = _ticket_row(session, who, ticket_id)
    _require_handler(who, row, "change its priority or category")
    if change.priority is not None:
        priority = _priority(change.priority)
        if priority.value != row.priority:
            _event(session, row, "priority", now, who.user_id, row.priority, priority.value)
            row.priority = priority.value
    if change.category is not None:
        category = _category(change.category)
        if category.value != row.category:
            _event(session, row, "category", now, who.user_id, row.category, category.value)
            row.category = category.value
    row.updated_at = now
    session.commit()
    return ticket_view(session, who, row, options, now)


# --- attachments ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _AttachmentPlan:
    ticket_id: int
    uploader_id: int
    name: str
    media_type: str
    internal: bool


def _plan_attachment(
    session: Session,
    who: Principal,
    ticket_id: int,
    name: str,
    media_type: str,
    internal: bool,
    declared_bytes: int | None,
    options: SupportOptions,
) -> _AttachmentPlan:
    row = _ticket_row(session, who, ticket_id)
    if internal:
        _require_handler(who, row, "attach internal files")
    if Status(row.status) is Status.CLOSED:
        raise _closed_conflict(row)
    refusal = check_attachment_type(media_type, options.attachment_types)
    if refusal:
        raise UnsupportedType(refusal)
    if declared_bytes is not None and declared_bytes > options.attachment_max_bytes:
        raise TooLarge(_too_large(declared_bytes, options))
    if not name.strip():
        raise InvalidInput.on("name", "give the file's name")
    return _AttachmentPlan(row.id, who.user_id, safe_filename(name), media_type, internal)


def _too_large(size: int, options: SupportOptions) -> str:
    return (
        f"the file is {size / MIB:,.1f} MiB; attachments may be at most "
        f"{options.attachment_max_bytes / MIB:,.1f} MiB: attach a smaller excerpt"
    )


class _Checker:
    """Checks a file against its declared type as it arrives: its first bytes, and for
    text that it is UTF-8 throughout."""

    def __init__(self, media_type: str) -> None:
        self.media_type = media_type
        self.head = b""
        self.checked = False
        self.text = codecs.getincrementaldecoder("utf-8")() if is_text_type(media_type) else None
        self.digest = hashlib.sha256()
        self.size = 0

    def feed(self, piece: bytes) -> None:
        self.size += len(piece)
        self.digest.update(piece)
        if not self.checked:
            self.head += piece[:64]
            if len(self.head) >= 16:
                self._check_head()
        self._check_text(piece, final=False)

    def finish(self) -> None:
        if self.size == 0:
            raise InvalidInput("the file is empty; attach one with content")
        if not self.checked:
            self._check_head()
        self._check_text(b"", final=True)

    def _check_head(self) -> None:
        self.checked = True
        refusal = check_attachment_start(self.media_type, self.head)
        if refusal:
            raise UnsupportedType(refusal)

    def _check_text(self, piece: bytes, final: bool) -> None:
        if self.text is None:
            return
        try:
            decoded = self.text.decode(piece, final)
        except UnicodeDecodeError:
            raise UnsupportedType(
                f"the file is not {self.media_type} in UTF-8: it holds bytes text never does"
            ) from None
        if "\x00" in decoded:
            raise UnsupportedType(
                f"the file does not look like {self.media_type}: it holds binary data"
            )


def _publish_attachment(
    sessions: sessionmaker[Session],
    plan: _AttachmentPlan,
    checker: _Checker,
    incoming: Path,
    stored_as: str,
    options: SupportOptions,
    now: datetime,
) -> Attachment:
    final = options.attachments_dir / stored_as
    incoming.replace(final)
    try:
        with sessions() as session:
            row = SupportAttachmentRow(
                ticket_id=plan.ticket_id, name=plan.name, media_type=plan.media_type,
                size_bytes=checker.size, sha256=checker.digest.hexdigest(), stored_as=stored_as,
                internal=plan.internal, uploaded_by=plan.uploader_id, uploaded_at=now,
            )  # fmt: skip
            session.add(row)
            ticket = session.get(SupportTicketRow, plan.ticket_id)
            if ticket is not None:
                ticket.updated_at = now
            session.commit()
            return _attachment(row, _usernames(session, [plan.uploader_id]))
    except BaseException:
        final.unlink(missing_ok=True)
        raise


async def receive_attachment(
    sessions: sessionmaker[Session],
    who: Principal,
    clock: Callable[[], datetime],
    ticket_id: int,
    name: str,
    media_type: str,
    internal: bool,
    declared_bytes: int | None,
    body: AsyncIterable[bytes],
    options: SupportOptions,
) -> Attachment:
    """Attach a file to a ticket, streamed from `body` to disk under the state dir. It is
    refused (and nothing kept) when it is over the size limit, of a type not allowed, or
    not what its type says; internal files are for the handling staff only."""

    def plan_it() -> _AttachmentPlan:
        with sessions() as session:
            return _plan_attachment(
                session, who, ticket_id, name, media_type, internal, declared_bytes, options
            )

    plan = await anyio.to_thread.run_sync(plan_it)
    checker = _Checker(plan.media_type)
    stored_as = uuid.uuid4().hex
    incoming_dir = options.attachments_dir / "incoming"
    await anyio.to_thread.run_sync(lambda: incoming_dir.mkdir(parents=True, exist_ok=True))
    incoming = incoming_dir / stored_as
    handle = await anyio.to_thread.run_sync(incoming.open, "wb")
    try:
        async for piece in body:
            if checker.size + len(piece) > options.attachment_max_bytes:
                raise TooLarge(_too_large(checker.size + len(piece), options) + " (cut off)")
            checker.feed(piece)
            await anyio.to_thread.run_sync(handle.write, piece)
        checker.finish()
        await anyio.to_thread.run_sync(handle.close)
        return await anyio.to_thread.run_sync(
            _publish_attachment, sessions, plan, checker, incoming, stored_as, options, clock()
        )
    finally:
        handle.close()
        incoming.unlink(missing_ok=True)


def store_attachment(
    session: Session,
    row: SupportTicketRow,
    uploader_id: int,
    name: str,
    media_type: str,
    data: bytes,
    options: SupportOptions,
    now: datetime,
    written: list[Path],
) -> str | None:
    """Keep a file that came with an e-mail (its row in the caller's transaction, its path
    added to `written` so a rollback can remove it); why it was not kept, or None."""
    refusal = check_attachment_type(media_type, options.attachment_types)
    if refusal:
        return refusal
    if len(data) > options.attachment_max_bytes:
        return _too_large(len(data), options)
    checker = _Checker(media_type)
    try:
        checker.feed(data)
        checker.finish()
    except (UnsupportedType, InvalidInput) as bad:
        return str(bad)
    stored_as = uuid.uuid4().hex
    options.attachments_dir.mkdir(parents=True, exist_ok=True)
    path = options.attachments_dir / stored_as
    written.append(path)
    path.write_bytes(data)
    session.add(
        SupportAttachmentRow(
            ticket_id=row.id, name=safe_filename(name), media_type=media_type, size_bytes=len(data),
            sha256=checker.digest.hexdigest(), stored_as=stored_as, internal=False,
            uploaded_by=uploader_id, uploaded_at=now,
        )
    )  # fmt: skip
    return None


@dataclass(frozen=True)
class AttachmentFile:
    path: Path
    name: str
    media_type: str
    size_bytes: int
    sha256: str


def open_attachment(
    session: Session, who: Principal, ticket_id: int, attachment_id: int, options: SupportOptions
) -> AttachmentFile:
    """A ticket's attachment, for download by those who may see it."""
    row = _ticket_row(session, who, ticket_id)
    found = session.scalars(
        select(SupportAttachmentRow).where(
            SupportAttachmentRow.id == attachment_id, SupportAttachmentRow.ticket_id == row.id
        )
    ).first()
    if found is None or (found.internal and not handles(who, row.queue)):
        raise NotFound("attachment", f"{attachment_id} of {ticket_reference(row.id)}")
    path = options.attachments_dir / found.stored_as
    if not path.is_file():
        raise NotFound("attachment file", f"{attachment_id} of {ticket_reference(row.id)}")
    return AttachmentFile(path, found.name, found.media_type, found.size_bytes, found.sha256)


# --- the periodic chores ----------------------------------------------------------------------


def escalate_breaches(session: Session, now: datetime, config: SupportConfig) -> int:
    """Flag every open ticket whose service level broke, once per clock: its history says so
    and, while it is still unanswered (or unresolved), the desk's staff and the central
    desk are told. Commits; how many breaches were flagged now."""
    rows = list(
        session.scalars(
            select(SupportTicketRow)
            .where(
                SupportTicketRow.status.in_([s.value for s in OPEN_STATUSES]),
                or_(
                    SupportTicketRow.first_answer_breach_at.is_(None),
                    SupportTicketRow.resolution_breach_at.is_(None),
                ),
            )
            .order_by(SupportTicketRow.id)
        )
    )
    waits = waits_of(session, [r.id for r in rows])
    flagged = 0
    for row in rows:
        clock = clock_of(row, waits.get(row.id, []), config, now)
        for kind, breached, already in (
            ("first-answer", clock.first_answer_breached, row.first_answer_breach_at),
            ("resolution", clock.resolution_breached, row.resolution_breach_at),
        ):
            if not breached or already is not None:
                continue
            if not notify_once(session, f"support-breach:{row.id}:{kind}", now):
                continue  # another process flagged it a moment ago
            if kind == "first-answer":
                row.first_answer_breach_at = now
                due = clock.first_answer_due
                still = row.first_answer_at is None
            else:
                row.resolution_breach_at = now
                due = clock.resolution_due
                still = True
            _event(session, row, "breach", now, None, None, kind, f"due {due.isoformat()}")
            flagged += 1
            if not still:
                continue
            reference = ticket_reference(row.id)
            level = config.levels[Category(row.category)]
            days = (
                level.first_answer_working_days
                if kind == "first-answer"
                else level.resolution_working_days + clock.paused_working_days
            )
            what = "a first answer" if kind == "first-answer" else "its resolution"
            notify(
                session,
                {*desk_staff(session, row.queue), *staff_with_role(session, Role.ACCESS_TEAM)},
                NotificationKind.SUPPORT_BREACH.value,
                f"{reference} broke its service level: no {kind.replace('-', ' ')} in time",
                f"{reference} ({row.subject}) at {queue_name(row.queue)} was due {what} within "
                f"{days} working days, by {_due_text(due)}. It is {row.status}, priority "
                f"{row.priority}.\n\nSee it with `fabriek support show {reference}`.",
                now,
            )  # fmt: skip
        session.commit()
    return flagged


def close_resolved(session: Session, now: datetime, config: SupportConfig) -> int:
    """Close the resolved tickets nobody reopened within the configured working days;
    commits; how many."""
    rows = session.scalars(
        select(SupportTicketRow)
        .where(
            SupportTicketRow.status == Status.RESOLVED.value,
            SupportTicketRow.resolved_at.is_not(None),
        )
        .order_by(SupportTicketRow.id)
    ).all()
    closed = 0
    for row in rows:
        assert row.resolved_at is not None
        if auto_close_due(row.resolved_at, config) <= now:
            _move(session, row, Status.CLOSED, now, None, "closed: not reopened after resolution")
            closed += 1
    session.commit()
    return closed
