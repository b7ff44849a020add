"""The support centre's periodic chores, run by the housekeeping round: broken service levels
escalated (once per clock), resolved tickets nobody reopened closed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from fabriek.domain.notifications import NotificationKind
from fabriek.domain.roles import Role
from fabriek.domain.support.routing import SupportConfig, queue_name
from fabriek.domain.support.service_levels import auto_close_due
from fabriek.domain.support.tickets import OPEN_STATUSES, Category, Status, ticket_reference
from fabriek.services.notifications.inbox import notify, notify_once, staff_with_role
from fabriek.services.support.conversation import move_ticket
from fabriek.services.support.tickets import clock_of, desk_staff, due_text, record_event, waits_of
from fabriek.store.tables import SupportTicketRow


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
            record_event(session, row, "breach", now, None, None, kind, f"due {due.isoformat()}")
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
                f"{days} working days, by {due_text(due)}. It is {row.status}, priority "
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
            move_ticket(
                session, row, Status.CLOSED, now, None, "closed: not reopened after resolution"
            )
            closed += 1
    session.commit()
    return closed
