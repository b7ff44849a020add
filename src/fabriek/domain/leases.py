"""Leases: which one of several control-plane servers holds a singleton role (the
dispatcher, the housekeeping) among all the servers that share one database. Pure: no I/O,
time comes in as arguments.

Two clocks meet here, and neither is trusted beyond what it can give:
- the store's clock (`now`, read from the database server in the same transaction as the
  write) decides whether a lease is free: a lease is taken over only once the store's own
  time is past its `expires_at`;
- a holder's own monotonic clock decides how long it may act: from the moment it *sent* the
  request that renewed its lease (before the store could have stamped it), for `ttl_s`
  minus a `margin_s` that covers the two clocks running at different rates. It stops
  before the store could hand the role to anyone else, without asking the store.

So two holders never act at one instant, as long as the clocks' rates differ by less than
`margin_s / ttl_s` (see `safe_drift`) and a holder that cannot reach the store stops at its
deadline. `epoch` grows by one at every change of holder: a fencing token writes can be
checked against.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

DISPATCHER = "dispatcher"
HOUSEKEEPING = "housekeeping"
ROLES = (DISPATCHER, HOUSEKEEPING)


@dataclass(frozen=True)
class LeaseTerms:
    """How long a lease lasts (`ttl_s`), how often its holder renews it (`renew_every_s`),
    and how much earlier than the lease's end the holder stops acting (`margin_s`)."""

    ttl_s: float = 6.0
    renew_every_s: float = 1.5
    margin_s: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.margin_s < self.ttl_s:
            raise ValueError("a lease's margin is more than 0 and less than its time to live")
        if not 0 < self.renew_every_s < self.ttl_s - self.margin_s:
            raise ValueError("a lease is renewed more often than it could lapse")

    @property
    def ttl(self) -> timedelta:
        return timedelta(seconds=self.ttl_s)

    def safe_drift(self) -> float:
        """The largest difference in rate between a holder's clock and the store's (a
        fraction: 0.01 is 1 %) under which no two holders ever act at one instant."""
        return self.margin_s / self.ttl_s


@dataclass(frozen=True)
class Lease:
    """A role's lease as the store holds it."""

    role: str
    holder: str
    epoch: int
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime

    def expired(self, now: datetime) -> bool:
        """Whether the store may give the role to another holder at `now` (store time)."""
        return now > self.expires_at

    @property
    def released(self) -> bool:
        """Whether its holder handed it back (stopping cleanly: it left no work half done),
        rather than letting it run out."""
        return self.expires_at <= self.renewed_at


class Outcome(Enum):
    TAKEN = "taken"  # the role was free (never held, or expired): a new epoch begins
    RENEWED = "renewed"  # the holder keeps it, in the same epoch
    REFUSED = "refused"  # another holder's lease is still running


@dataclass(frozen=True)
class Claim:
    """What a contender's attempt comes to: the lease to write (None when refused), and
    the lease it replaces (what the write must still find, for it to be atomic)."""

    outcome: Outcome
    lease: Lease | None
    replaces: Lease | None


def claim(current: Lease | None, role: str, me: str, now: datetime, terms: LeaseTerms) -> Claim:
    """`me`'s attempt on `role` at store time `now`, given the lease the store holds.

    Its own lease is renewed (even one that ran out: no one else held it meanwhile, since
    then `current` would name them); a free or expired one is taken in a new epoch; another
    holder's running lease is refused."""
    until = now + terms.ttl
    if current is None:
        return Claim(Outcome.TAKEN, Lease(role, me, 1, now, now, until), None)
    if current.holder == me:
        renewed = Lease(role, me, current.epoch, current.acquired_at, now, until)
        return Claim(Outcome.RENEWED, renewed, current)
    if current.expired(now):
        return Claim(Outcome.TAKEN, Lease(role, me, current.epoch + 1, now, now, until), current)
    return Claim(Outcome.REFUSED, None, current)


def acting_until(sent_at: float, terms: LeaseTerms) -> float:
    """Until when (on the holder's monotonic clock) a holder may act, whose attempt sent at
    `sent_at` (its monotonic clock, before the request left) took or renewed the lease."""
    return sent_at + terms.ttl_s - terms.margin_s


def may_act(deadline: float | None, now: float) -> bool:
    """Whether a holder may still act at `now` (its monotonic clock) with this deadline
    (None: it holds no lease)."""
    return deadline is not None and now < deadline
