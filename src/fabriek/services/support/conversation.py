"""A ticket's conversation and its course: replies and internal notes, status changes (the
clocks' moments kept true), handovers between desks, and triage."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from fabriek.domain.errors import Conflict, Forbidden, InvalidInput
from fabriek.domain.notifications import NotificationKind
from fabriek.domain.roles import Principal
from fabriek.domain.support.routing import parse_queue, queue_name
from fabriek.domain.support.shapes import (
    Handover,
    Message,
    MessageDraft,
    StatusChange,
    Ticket,
    TicketChange,
)
from fabriek.domain.support.tickets import (
    OPEN_STATUSES,
    TRANSITIONS,
    USER_MAY_SET,
    Status,
    after_staff_reply,
    after_user_reply,
    may_move,
    ticket_reference,
)
from fabriek.services import audit
from fabriek.services.notifications.inbox import notify
from fabriek.services.support.config import SupportOptions
from fabriek.services.support.outbox import queue_ticket_mail
from fabriek.services.support.tickets import (
    desk_staff,
    handles,
    read_category,
    read_priority,
    read_status,
    record_event,
    require_handler,
    ticket_row,
    ticket_view,
)
from fabriek.store.tables import SupportMessageRow, SupportTicketRow, UserRow


def move_ticket(
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
    record_event(session, row, "status", now, actor_id, current.value, target.value, note)


def _check_move(row: SupportTicketRow, target: Status) -> None:
    current = Status(row.status)
    if target is not current and not may_move(current, target):
        options = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "nothing"
        raise Conflict(f"{ticket_reference(row.id)} is {current.value}; it may go to: {options}")


def closed_conflict(row: SupportTicketRow) -> Conflict:
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
        move_ticket(session, row, after_staff_reply(Status(row.status)), now, author.id)
        if status is not None:
            move_ticket(session, row, status, now, author.id)
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
    move_ticket(session, row, after_user_reply(Status(row.status)), now, author.id)
    if status is not None:
        move_ticket(session, row, status, now, author.id)
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
    row = ticket_row(session, who, ticket_id)
    handling = handles(who, row.queue)
    if draft.internal and not handling:
        raise Forbidden(
            f"internal notes are for the staff handling {ticket_reference(row.id)} "
            f"({queue_name(row.queue)}); write a reply instead"
        )
    if Status(row.status) is Status.CLOSED:
        raise closed_conflict(row)
    staff = handling and row.author_id != who.user_id
    target = read_status(draft.status) if draft.status else None
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
    row = ticket_row(session, who, ticket_id)
    target = read_status(change.status)
    handling = handles(who, row.queue)
    if not handling and target not in USER_MAY_SET:
        raise Forbidden(
            f"only the staff handling {ticket_reference(row.id)} ({queue_name(row.queue)}) "
            f"may set it to {target.value}; you may close it"
        )
    _check_move(row, target)
    if target is not Status(row.status):
        move_ticket(session, row, target, now, who.user_id, change.note)
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
    row = ticket_row(session, who, ticket_id)
    require_handler(who, row, "hand it over")
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
    record_event(session, row, "handover", now, who.user_id, before, target, note)
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
    row = ticket_row(session, who, ticket_id)
    require_handler(who, row, "change its priority or category")
    if change.priority is not None:
        priority = read_priority(change.priority)
        if priority.value != row.priority:
            record_event(session, row, "priority", now, who.user_id, row.priority, priority.value)
            row.priority = priority.value
    if change.category is not None:
        category = read_category(change.category)
        if category.value != row.category:
            record_event(session, row, "category", now, who.user_id, row.category, category.value)
            row.category = category.value
    row.updated_at = now
    session.commit()
    return ticket_view(session, who, row, options, now)
