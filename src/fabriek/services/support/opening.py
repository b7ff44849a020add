"""Opening a ticket: routed to a desk, about one of the author's own objects (with its context
when the author consents), acknowledged to the author by e-mail and announced to the
desk's staff."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy.orm import Session

from fabriek.domain.access.tracks import AccessConfig
from fabriek.domain.errors import InvalidInput
from fabriek.domain.geography import Province
from fabriek.domain.notifications import NotificationKind
from fabriek.domain.roles import Principal
from fabriek.domain.support.routing import queue_name, route
from fabriek.domain.support.shapes import Ticket, TicketDraft
from fabriek.domain.support.tickets import CATEGORY_NAMES, Category, Status, ticket_reference
from fabriek.services.jobs.dispatch import Dispatcher
from fabriek.services.notifications.inbox import notify
from fabriek.services.support.config import SupportOptions
from fabriek.services.support.context import Subject, project_ref, subject_of
from fabriek.services.support.outbox import queue_ticket_mail
from fabriek.services.support.tickets import (
    clock_of,
    desk_staff,
    due_text,
    read_category,
    read_priority,
    record_event,
    ticket_view,
)
from fabriek.store.tables import OrganisationRow, SupportTicketRow, UserRow


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
    category = read_category(draft.category)
    priority = read_priority(draft.priority)
    subject = (
        subject_of(session, who, draft.about, access, dispatcher, now) if draft.about else None
    )
    if subject is None and draft.share_context:
        raise InvalidInput.on(
            "share_context", "there is no context to share: say what it is about (about)"
        )
    project_id = _project_of(session, who, draft.project, subject)
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
    record_event(session, row, "opened", now, who.user_id, None, queue)
    _announce(session, options, row, user, now)
    session.commit()
    return ticket_view(session, who, row, options, now)


def _project_of(
    session: Session, who: Principal, project: str | None, subject: Subject | None
) -> int | None:
    """The project a ticket is of: the one named (the caller's own), which must be its
    subject's if it has one; else its subject's."""
    if not project:
        return subject.project_id if subject else None
    chosen, name = project_ref(session, who, project.strip())
    if subject is not None and chosen != subject.project_id:
        raise InvalidInput.on(
            "project", f"{subject.about} is of project {subject.project}, not {name}"
        )
    return chosen


def _announce(
    session: Session, options: SupportOptions, row: SupportTicketRow, user: UserRow, now: datetime
) -> None:
    """Acknowledge a new ticket to its author (by e-mail, queued) and tell its desk's staff."""
    reference = ticket_reference(row.id)
    category = Category(row.category)
    clock = clock_of(row, [], options.config, now)
    days = options.config.levels[category].first_answer_working_days
    queue_ticket_mail(
        session, options.support_address, row, "ack", user.email, row.subject,
        f"Dear {user.full_name},\n\nYour ticket {reference} reached {queue_name(row.queue)}. "
        f"We answer within {days} working day{'s' if days != 1 else ''}, by "
        f"{due_text(clock.first_answer_due)}.\n\n"
        "Reply to this e-mail to add to the ticket; keep the address it came from.\n"
        f"Follow it with `fabriek support show {reference}`.\n",
        now,
    )  # fmt: skip
    about_text = f" about {row.about}" if row.about else ""
    notify(
        session, desk_staff(session, row.queue), NotificationKind.SUPPORT_TICKET.value,
        f"{reference}: {row.subject}",
        f"{user.full_name} ({user.username}) opened {reference}{about_text} in "
        f"{CATEGORY_NAMES[category]}, priority {row.priority}. First answer due by "
        f"{due_text(clock.first_answer_due)}.\n\nSee it with `fabriek support show {reference}`.",
        now,
    )  # fmt: skip
