"""One sync with the federation platform, as Waldur's site agent polls: take in the
offering's open orders, follow each resource's team, report usage back.

State is in the store, written before the platform is told: an order's outcome is kept by
its UUID once Fabriek has applied it (or found it cannot), and its report to the platform
is noted when the platform took it. A sync that stops half way (a crash, the platform
down) is finished by the next: an order already applied is only reported again, never
applied twice, and a usage figure is recorded once the platform accepted it, so it is
neither lost nor, once recorded, sent again. (A figure sent just before a crash is sent
once more: the platform keeps one figure per resource, component and month, so the second
send replaces the first and nothing is counted twice.)
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fabriek.domain.errors import Conflict, InvalidInput, NotFound
from fabriek.domain.federation import (
    Components,
    OrderKind,
    OrderOutcome,
    Period,
    PlatformOrder,
    UsageFigure,
)
from fabriek.services.federation import usage
from fabriek.services.federation.orders import (
    Held,
    OrderRules,
    acting_as,
    apply_order,
    sync_members,
)
from fabriek.services.federation.platform import (
    Platform,
    PlatformRefused,
    PlatformUnavailable,
    order_from,
)
from fabriek.store.tables import (
    FederationOrderRow,
    FederationResourceRow,
)

log = logging.getLogger("fabriek.federation")

PENDING_PROVIDER = "pending-provider"
# What an order itself gets wrong (its message is the reason the platform is told); any
# other error (the store down, a bug) leaves the order undecided for the next sync.
_ORDER_ERRORS = (InvalidInput, NotFound, Conflict)


@dataclass
class SyncResult:
    """What one sync did."""

    done: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    held: list[tuple[str, str]] = field(default_factory=list)
    reported_again: list[str] = field(default_factory=list)
    members_added: int = 0
    members_removed: int = 0
    usage_sent: int = 0
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "done": self.done,
            "failed": [{"order": o, "reason": r} for o, r in self.failed],
            "held": [{"order": o, "reason": r} for o, r in self.held],
            "reported_again": self.reported_again,
            "members_added": self.members_added,
            "members_removed": self.members_removed,
            "usage_sent": self.usage_sent,
            "errors": self.errors,
        }


def _report(platform: Platform, row: FederationOrderRow, state: str) -> None:
    """Tell the platform an order's outcome; an order still pending is first approved, as
    the site agent does (the platform then lets its state be set)."""
    if state == PENDING_PROVIDER:
        platform.approve(row.order_uuid)
    if row.outcome == OrderOutcome.DONE:
        platform.done(row.order_uuid)
    else:
        platform.erred(row.order_uuid, row.reason or "refused by the site")


def _decide(
    sessions: sessionmaker[Session],
    platform: Platform,
    rules: OrderRules,
    order: PlatformOrder,
    now: datetime,
    result: SyncResult,
) -> FederationOrderRow | None:
    """Apply one order and keep its outcome; None when it is held for an operator."""
    team = platform.team(order.resource_uuid) if order.kind == OrderKind.CREATE else []
    with sessions() as session:
        who = acting_as(session, rules.actor)
        try:
            what = apply_order(session, who, rules, order, team, now)
            outcome, reason = OrderOutcome.DONE, what
        except Held as held:
            session.rollback()
            outcome, reason = OrderOutcome.HELD, str(held)
        except _ORDER_ERRORS as error:
            session.rollback()
            outcome, reason = OrderOutcome.FAILED, str(error)
        row = session.get(FederationOrderRow, order.uuid)
        if row is None:
            row = FederationOrderRow(
                order_uuid=order.uuid, resource_uuid=order.resource_uuid,
                kind=order.kind.value, received_at=now,
            )  # fmt: skip
            session.add(row)
        row.outcome, row.reason, row.decided_at = outcome.value, reason, now
        session.commit()
        session.expunge(row)
    if outcome == OrderOutcome.HELD:
        result.held.append((order.uuid, reason))
        log.info("order %s held: %s", order.uuid, reason)
        return None
    if outcome == OrderOutcome.FAILED:
        result.failed.append((order.uuid, reason))
        log.warning("order %s failed: %s", order.uuid, reason)
    else:
        result.done.append(order.uuid)
        log.info("order %s done: %s", order.uuid, reason)
    return row


def take_orders(
    sessions: sessionmaker[Session],
    platform: Platform,
    rules: OrderRules,
    now: datetime,
    result: SyncResult,
) -> None:
    """Every open order of the offering: applied once (by its UUID), then reported. An
    order the platform refuses a call about is noted and the others go on; the platform
    being down ends the round (PlatformUnavailable)."""
    for raw in platform.open_orders():
        order = order_from(raw)
        try:
            _take(sessions, platform, rules, order, now, result)
        except PlatformRefused as refused:
            result.errors.append(str(refused))
            log.warning("%s; tried again at the next sync", refused)


def _take(
    sessions: sessionmaker[Session],
    platform: Platform,
    rules: OrderRules,
    order: PlatformOrder,
    now: datetime,
    result: SyncResult,
) -> None:
    with sessions() as session:
        row = session.get(FederationOrderRow, order.uuid)
        if row is not None:
            session.expunge(row)
    if row is not None and row.outcome != OrderOutcome.HELD:
        # Decided before, and the platform still lists it: its report did not arrive.
        result.reported_again.append(order.uuid)
    else:
        row = _decide(sessions, platform, rules, order, now, result)
        if row is None:
            return
    _report(platform, row, order.state)
    with sessions() as session:
        kept = session.get(FederationOrderRow, order.uuid)
        assert kept is not None
        kept.reported_at = now
        session.commit()


def follow_teams(
    sessions: sessionmaker[Session],
    platform: Platform,
    rules: OrderRules,
    now: datetime,
    result: SyncResult,
) -> None:
    """Each live resource's project holds its platform team (joins and leaves)."""
    with sessions() as session:
        live = list(
            session.scalars(
                select(FederationResourceRow.resource_uuid).where(
                    FederationResourceRow.terminated_at.is_(None)
                )
            )
        )
    for resource_uuid in live:
        try:
            team = platform.team(resource_uuid)
        except PlatformRefused as refused:
            result.errors.append(str(refused))
            continue
        with sessions() as session:
            who = acting_as(session, rules.actor)
            try:
                added, removed = sync_members(session, who, rules, resource_uuid, team, now)
            except _ORDER_ERRORS as error:
                session.rollback()
                result.errors.append(f"team of resource {resource_uuid}: {error}")
                continue
        result.members_added += added
        result.members_removed += removed


def report_usage(
    sessions: sessionmaker[Session],
    platform: Platform,
    components: Components,
    now: datetime,
    result: SyncResult,
) -> None:
    """Send every figure due, one call per resource and month; each recorded once the
    platform accepted it. One the platform refuses stays due (retried next sync)."""
    with sessions() as session:
        due = usage.due_reports(session, now, components.gpu_hours, components.energy)
    batches: dict[tuple[str, Period], list[UsageFigure]] = defaultdict(list)
    for figure in due:
        batches[(figure.resource_uuid, figure.period)].append(figure)
    for (resource_uuid, period), figures in batches.items():
        try:
            platform.set_usage(resource_uuid, period, {f.component: f.amount for f in figures})
        except PlatformRefused as refused:
            result.errors.append(str(refused))
            log.warning("%s; sent again at the next sync", refused)
            continue
        with sessions() as session:
            usage.record_sent(session, figures, now)
            session.commit()
        result.usage_sent += len(figures)


def sync_once(
    sessions: sessionmaker[Session],
    platform: Platform,
    rules: OrderRules,
    components: Components,
    now: datetime,
) -> SyncResult:
    """One sync: orders, teams, usage. The platform being down ends it early (what was
    done is kept; the rest is the next sync's); a refused call is noted in `errors`."""
    result = SyncResult()
    steps: list[Callable[[], None]] = [
        lambda: take_orders(sessions, platform, rules, now, result),
        lambda: follow_teams(sessions, platform, rules, now, result),
        lambda: report_usage(sessions, platform, components, now, result),
    ]
    for step in steps:
        try:
            step()
        except PlatformUnavailable as down:
            result.errors.append(str(down))
            log.warning("%s; the next sync goes on", down)
            break
        except PlatformRefused as refused:
            result.errors.append(str(refused))
            log.warning("%s", refused)
    return result


class FederationLoop:
    """Syncs with the platform every `every_s` seconds, in a thread of its own, when the
    housekeeping (run by the one server that holds its lease) ticks it: never two syncs at
    once, and never on the scheduling cycle's path."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        platform: Callable[[], Platform],
        rules: OrderRules,
        components: Components,
        every_s: float,
    ) -> None:
        self.sessions = sessions
        self.platform = platform
        self.rules = rules
        self.components = components
        self.every_s = every_s
        self.last: SyncResult | None = None
        self._last_at = float("-inf")
        self._running: Future[None] | None = None
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="federation")

    def tick(self, at: datetime) -> bool:
        """Start a sync (as of `at`) if one is due and none is running; whether one
        started. Returns at once."""
        now = time.monotonic()
        with self._lock:
            if self._running is not None and not self._running.done():
                return False
            if now - self._last_at < self.every_s:
                return False
            self._last_at = now
            self._running = self._pool.submit(self._sync, at)
            return True

    def _sync(self, at: datetime) -> None:
        try:
            platform = self.platform()
            try:
                self.last = sync_once(self.sessions, platform, self.rules, self.components, at)
            finally:
                platform.close()
        except Exception:  # the next tick tries again
            log.exception("the federation sync failed")

    def wait(self, timeout_s: float | None = None) -> None:
        running = self._running
        if running is not None:
            running.result(timeout=timeout_s)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
