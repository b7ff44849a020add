"""Which control-plane server dispatches and which does the housekeeping, among any number
of servers on any number of machines sharing one database: a lease per role in the store's
`leases` table (the rules: `fabriek.domain.leases`).

Every server runs a `LeaseKeeper`: every `renew_every_s` it tries each role once, with one
conditional write that succeeds only against the lease it read (so two contenders never
both take it, on PostgreSQL as on SQLite). A holder acts only until its own monotonic
deadline, which falls before the store could give the role to another; writes the
dispatcher commits are fenced besides (`fence`): they commit only while the store still
names this server, in the epoch it took, and on PostgreSQL a takeover waits for them.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from fabriek.domain.leases import (
    ROLES,
    Lease,
    LeaseTerms,
    Outcome,
    acting_until,
    claim,
    may_act,
)
from fabriek.domain.roles import Principal
from fabriek.services.identity.permissions import require_admin
from fabriek.store.tables import LeaseRow

log = logging.getLogger("fabriek.leadership")


class LeaseLost(Exception):
    """This server no longer holds the role it was acting for: what it was writing is
    dropped (the role's new holder does it)."""


@dataclass(frozen=True)
class Gained:
    """A role this server just took: in which epoch, and whether the holder before it may
    have left work half done (it did not hand the role back: it died or stalled)."""

    role: str
    epoch: int
    inherits: bool


def server_id() -> str:
    """This server's name as a holder: its host, its process, and a random part, so that a
    restarted process is a new holder (and a new epoch)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def store_now(session: Session) -> datetime:
    """The store's time: the database server's clock on PostgreSQL (one clock for every
    machine), this machine's on SQLite (one machine)."""
    if session.get_bind().dialect.name == "postgresql":
        now = session.scalar(select(func.now()))
        if isinstance(now, datetime):
            return now.astimezone(UTC)
    return datetime.now(UTC)


def _lease(row: LeaseRow | None) -> Lease | None:
    if row is None:
        return None
    return Lease(row.role, row.holder, row.epoch, row.acquired_at, row.renewed_at, row.expires_at)


def leases(session: Session) -> list[Lease]:
    """Every role's lease as the store holds it (who leads, in which epoch, until when)."""
    rows = session.scalars(select(LeaseRow).order_by(LeaseRow.role)).all()
    return [lease for row in rows if (lease := _lease(row)) is not None]


def try_role(
    sessions: sessionmaker[Session], role: str, me: str, terms: LeaseTerms
) -> tuple[Outcome, Lease | None, Lease | None]:
    """One attempt on `role`: the outcome, the lease now held (None when refused), and the
    lease it replaced. The write is conditional on the lease read, so of two contenders at
    most one succeeds; the one that loses is refused."""
    with sessions() as session:
        now = store_now(session)
        current = _lease(session.get(LeaseRow, role))
        decided = claim(current, role, me, now, terms)
        lease, old = decided.lease, decided.replaces
        if lease is None:
            return Outcome.REFUSED, None, current
        if old is None:
            session.add(
                LeaseRow(
                    role=role, holder=me, epoch=lease.epoch, acquired_at=now,
                    renewed_at=now, expires_at=lease.expires_at,
                )
            )  # fmt: skip
            try:
                session.commit()
            except IntegrityError:  # another server inserted it first
                session.rollback()
                return Outcome.REFUSED, None, None
            return decided.outcome, lease, None
        guard = [LeaseRow.role == role, LeaseRow.holder == old.holder, LeaseRow.epoch == old.epoch]
        if decided.outcome == Outcome.TAKEN:
            # Still expired when written: a renewal by its holder in between wins.
            guard.append(LeaseRow.expires_at < now)
        written = session.execute(
            update(LeaseRow)
            .where(*guard)
            .values(
                holder=me, epoch=lease.epoch, acquired_at=lease.acquired_at,
                renewed_at=now, expires_at=lease.expires_at,
            )
            .execution_options(synchronize_session=False)
        )  # fmt: skip
        session.commit()
        if getattr(written, "rowcount", 0) != 1:
            return Outcome.REFUSED, None, old
        return decided.outcome, lease, old


class LeaseKeeper:
    """Holds (or waits for) the roles of this server, renewing them in a thread of its own.

    `holds(role)` says whether this server may act as the role now; `fence(session, role)`
    makes a transaction commit only if the store still names this server as the role's
    holder in the epoch it took; `on_gain` hears of every role taken."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        terms: LeaseTerms | None = None,
        roles: Iterable[str] = ROLES,
        holder: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions = sessions
        self.terms = terms or LeaseTerms()
        self.roles = tuple(roles)
        self.holder = holder or server_id()
        self.clock = clock
        self._lock = threading.Lock()
        self._deadline: dict[str, float] = {}
        self._epoch: dict[str, int] = {}
        self._gained: list[Gained] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # -- what the dispatcher asks ---------------------------------------------------------

    def holds(self, role: str) -> bool:
        """Whether this server may act as `role` now (by its own clock, asking no one)."""
        with self._lock:
            return may_act(self._deadline.get(role), self.clock())

    def epoch(self, role: str) -> int | None:
        """The epoch of this server's lease on `role`, while it holds it."""
        with self._lock:
            if not may_act(self._deadline.get(role), self.clock()):
                return None
            return self._epoch.get(role)

    def gained(self) -> list[Gained]:
        """The roles taken since the last call (each reported once)."""
        with self._lock:
            taken, self._gained = self._gained, []
        return taken

    def fence(self, session: Session, role: str) -> None:
        """Raise LeaseLost unless the store still names this server as `role`'s holder in
        its epoch. Called just before a commit, after the transaction's writes were flushed:
        on PostgreSQL the lease row is then share-locked until the commit, so a takeover
        waits for it; on SQLite the flushed writes already hold the one write lock."""
        epoch = self.epoch(role)
        if epoch is None:
            raise LeaseLost(f"this server's lease on {role} ran out")
        session.flush()
        row = session.execute(
            select(LeaseRow.holder, LeaseRow.epoch)
            .where(LeaseRow.role == role)
            .with_for_update(read=True)
        ).first()
        if row is None or row.holder != self.holder or row.epoch != epoch:
            raise LeaseLost(f"another server took {role} (epoch {row.epoch if row else '?'})")

    # -- keeping the leases ---------------------------------------------------------------

    def attempt(self) -> None:
        """Try every role once: take it if free, renew it if held."""
        for role in self.roles:
            sent = self.clock()
            try:
                outcome, lease, old = try_role(self.sessions, role, self.holder, self.terms)
            except SQLAlchemyError as exc:
                # The store does not answer: the deadline stands, and lapses by itself.
                log.warning("the lease on %s could not be renewed: %s", role, exc)
                continue
            with self._lock:
                if outcome == Outcome.REFUSED or lease is None:
                    if role in self._deadline:
                        log.warning("this server no longer holds %s", role)
                    self._deadline.pop(role, None)
                    self._epoch.pop(role, None)
                    continue
                if self._epoch.get(role) != lease.epoch:
                    inherits = old is not None and old.holder != self.holder and not old.released
                    self._gained.append(Gained(role, lease.epoch, inherits))
                    log.info("this server holds %s from now (epoch %s)", role, lease.epoch)
                self._epoch[role] = lease.epoch
                self._deadline[role] = acting_until(sent, self.terms)

    def start(self) -> None:
        """Take what is free now, then keep trying in a thread until `stop`."""
        self._stop.clear()
        self.attempt()
        self._thread = threading.Thread(target=self._run, name="leases", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.terms.renew_every_s):
            try:
                self.attempt()
            except Exception:  # the thread must outlive any one failure
                log.exception("keeping the leases failed")

    def stop(self) -> None:
        """Stop renewing and hand back every role held (its next holder need not wait for
        the lease to run out, nor for work left half done: there is none)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            held = {r: e for r, e in self._epoch.items() if r in self._deadline}
            self._deadline.clear()
            self._epoch.clear()
        for role, epoch in held.items():
            try:
                with self.sessions() as session:
                    now = store_now(session)
                    session.execute(
                        update(LeaseRow)
                        .where(
                            LeaseRow.role == role,
                            LeaseRow.holder == self.holder,
                            LeaseRow.epoch == epoch,
                        )
                        .values(renewed_at=now, expires_at=now)
                        .execution_options(synchronize_session=False)
                    )
                    session.commit()
            except SQLAlchemyError as exc:  # it runs out by itself
                log.warning("the lease on %s could not be handed back: %s", role, exc)


def who_leads(session: Session, who: Principal) -> list[Lease]:
    """Every role's lease, for an admin: which server dispatches and which housekeeps."""
    require_admin(who, "see which server holds the control plane's roles")
    return leases(session)
