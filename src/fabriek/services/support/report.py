"""A support desk's month: what the hub (or the central desk) was asked, by category and
sector, how fast it answered and resolved, which service levels broke, and the expert hours
its network delivered."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from fabriek.domain.calendar import AMSTERDAM
from fabriek.domain.errors import Forbidden, InvalidInput
from fabriek.domain.roles import Principal, Role
from fabriek.domain.support.report import (
    UNKNOWN_SECTOR,
    SupportReport,
    TicketFacts,
    month_bounds,
    summarise,
)
from fabriek.domain.support.routing import CENTRAL, SupportConfig, parse_queue, queue_name
from fabriek.domain.support.tickets import Category
from fabriek.services.support import expertise
from fabriek.services.support.tickets import clock_of, is_central_desk, waits_of
from fabriek.store.tables import SupportTicketRow

log = logging.getLogger("fabriek.support")


def _desk(who: Principal, hub: str | None) -> str:
    """The desk whose report the caller asked for (default: their own), if they may see it."""
    mine = sorted(who.scopes(Role.HUB_STAFF))
    if hub is None:
        if mine:
            return mine[0]
        if is_central_desk(who):
            return CENTRAL
        raise Forbidden("the support report is for the staff of an AI hub and the central desk")
    try:
        desk = parse_queue(hub)
    except ValueError as bad:
        raise InvalidInput.on("hub", str(bad)) from None
    if not is_central_desk(who) and desk not in mine:
        raise Forbidden(
            f"only the staff of {queue_name(desk)} and the central desk may see its report"
        )
    return desk


def _expert_hours(session: Session, desk: str, start: datetime) -> tuple[dict[str, float], str]:
    """The hub's consultation hours in the month by sector, from the expertise network; with
    a note when there are none to read."""
    try:
        # A savepoint: a store without the consultations' table must not spoil the report's
        # transaction (PostgreSQL refuses everything after an error otherwise).
        with session.begin_nested():
            hours = expertise.hours_by_hub_and_sector(session, desk, start.date())
    except SQLAlchemyError as exc:
        log.warning("expert hours of %s unreadable: %s", desk, exc)
        return {}, "expert hours: no consultations could be read from the store; counted 0"
    if not any(hours.values()):
        return {}, "expert hours: no consultations were logged for this desk in the month"
    return dict(hours), ""


def monthly_report(
    session: Session,
    who: Principal,
    hub: str | None,
    month: str | None,
    config: SupportConfig,
    now: datetime,
) -> SupportReport:
    """The report of `hub` (a hub's code or `central`; default: the caller's own) for
    `month` (YYYY-MM; default: this one, in Amsterdam). Hub staff see their own hub's,
    the central desk every desk's. Tickets count where they are now: one handed over
    counts for the desk that holds it. Service levels are read as they stand at `now`."""
    desk = _desk(who, hub)
    label = month.strip() if month else f"{now.astimezone(AMSTERDAM):%Y-%m}"
    try:
        start, end = month_bounds(label)
    except ValueError as bad:
        raise InvalidInput.on("month", str(bad)) from None
    rows = list(
        session.scalars(
            select(SupportTicketRow)
            .where(
                SupportTicketRow.queue == desk,
                SupportTicketRow.created_at >= start,
                SupportTicketRow.created_at < end,
            )
            .order_by(SupportTicketRow.id)
        )
    )
    waits = waits_of(session, [r.id for r in rows])
    facts = [
        TicketFacts(
            category=Category(r.category),
            sector=r.sector or UNKNOWN_SECTOR,
            opened_at=r.created_at,
            clock=clock_of(r, waits.get(r.id, []), config, now),
        )
        for r in rows
    ]
    experts, note = _expert_hours(session, desk, start)
    notes = ["tickets count for the desk that holds them now, by the month they were opened"]
    if note:
        notes.append(note)
    return summarise(desk, queue_name(desk), label, facts, experts, notes)
