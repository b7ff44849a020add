"""The federation platform's orders and usage reports, as Fabriek sees them: typed values
and the pure rules of a site of the EuroHPC federation platform (a Waldur marketplace).

An approved allocation on the platform is an *order* for a *resource* of Fabriek's
offering; Fabriek keeps one project (with one allocation) per resource. Usage goes back
per resource, component (GPU-hours, kWh) and month: once per month that has ended, and
again only when late accounting changes the month's figure.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum


class OrderKind(StrEnum):
    """What an order asks (the platform's `type`)."""

    CREATE = "Create"
    UPDATE = "Update"
    TERMINATE = "Terminate"


class OrderOutcome(StrEnum):
    """Where Fabriek is with one order, kept in the store by the order's UUID."""

    HELD = "held"  # waits for an operator (an organisation or person Fabriek does not know)
    DONE = "done"  # applied in Fabriek
    FAILED = "failed"  # cannot be applied; the reason goes back to the platform


class UnknownPolicy(StrEnum):
    """What an order naming an organisation or a person Fabriek does not know does."""

    CREATE = "create"  # onboard it, with the configured defaults
    HOLD = "hold"  # keep the order pending on the platform until an operator onboards it


@dataclass(frozen=True)
class Person:
    """A member of the platform's project, as the platform names them."""

    username: str
    full_name: str
    email: str
    role: str = "member"


@dataclass(frozen=True)
class PlatformOrder:
    """One order of Fabriek's offering, with what Fabriek needs of it."""

    uuid: str
    kind: OrderKind
    state: str
    resource_uuid: str
    resource_name: str
    organisation: str
    project_title: str
    project_description: str
    principal_investigator: Person | None
    gpu_hours: float | None
    access_mode: str | None
    ends_on: date | None
    # The platform's decision: its approval of the order (when it was created, failing that).
    decided_at: datetime | None = None


@dataclass(frozen=True)
class Components:
    """The offering's components Fabriek reports: GPU-hours and energy (kWh)."""

    gpu_hours: str = "gpu_hours"
    energy: str = "energy_kwh"


@dataclass(frozen=True)
class Period:
    """A calendar month (UTC), the platform's billing period."""

    year: int
    month: int

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return self.next().start

    def next(self) -> Period:
        return Period(self.year + self.month // 12, self.month % 12 + 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @classmethod
    def of(cls, when: datetime) -> Period:
        moment = when.astimezone(UTC)
        return cls(moment.year, moment.month)

    @classmethod
    def parse(cls, text: str) -> Period:
        return cls(int(text[:4]), int(text[5:7]))


@dataclass(frozen=True)
class UsageFigure:
    """One figure to report: a resource's use of a component in a month."""

    resource_uuid: str
    component: str
    period: Period
    amount: float


# Figures are sent with three decimals; a change smaller than that is no correction.
DECIMALS = 3


def rounded(amount: float) -> float:
    return round(amount, DECIMALS)


def ended_periods(starts: datetime, until: datetime, now: datetime) -> list[Period]:
    """The months an allocation from `starts` to `until` spans that have ended by `now`:
    those are reported (a month still running has no final figure yet)."""
    first = Period.of(starts)
    last_end = min(until, now)
    found: list[Period] = []
    period = first
    while period.end <= now and period.start < last_end:
        found.append(period)
        period = period.next()
    return found


def split_by_month(started: datetime, ended: datetime, amount: float) -> dict[Period, float]:
    """Share `amount` (of a run from `started` to `ended`) over the months it ran in, in
    proportion to its time in each: a run over midnight of the 1st is charged to both."""
    if ended <= started:
        return {Period.of(started): amount}
    total = (ended - started).total_seconds()
    shares: dict[Period, float] = {}
    period = Period.of(started)
    while period.start < ended:
        lo, hi = max(started, period.start), min(ended, period.end)
        seconds = (hi - lo).total_seconds()
        if seconds > 0:
            shares[period] = amount * seconds / total
        period = period.next()
    return shares


def reports_due(
    measured: dict[tuple[str, str, Period], float],
    reported: dict[tuple[str, str, Period], float],
) -> list[UsageFigure]:
    """The figures to send: each one never sent, and each whose measure has changed since
    it was sent (late accounting: the platform's figure for that month is replaced).
    Everything else was sent once and is not sent again."""
    due = []
    for key in sorted(measured, key=lambda k: (k[0], k[1], k[2].year, k[2].month)):
        amount = rounded(measured[key])
        sent = reported.get(key)
        if sent is None or rounded(sent) != amount:
            due.append(UsageFigure(key[0], key[1], key[2], amount))
    return due


@dataclass(frozen=True)
class MemberChanges:
    """Who joins and who leaves a project so that it has the platform's team."""

    add: tuple[str, ...]
    remove: tuple[str, ...]


def member_changes(current: set[str], team: set[str], keep: set[str]) -> MemberChanges:
    """Members to add (on the team, not in the project) and to remove (in the project, not
    on the team), never removing those in `keep` (the principal investigator)."""
    return MemberChanges(
        add=tuple(sorted(team - current)), remove=tuple(sorted(current - team - keep))
    )


_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def slug(text: str) -> str:
    """Lowercase ASCII letters and digits joined by '-': 'Fast Lane' -> 'fast-lane'."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _NOT_SLUG.sub("-", plain.lower()).strip("-")


def project_name(resource_name: str, resource_uuid: str) -> str:
    """The Fabriek project of a platform resource: its name as a slug, with the start of
    the resource's UUID so two resources of the same name stay two projects."""
    base = slug(resource_name)[:40].strip("-") or "project"
    if not base[0].isalpha():
        base = f"p-{base}"
    return f"{base}-{resource_uuid.replace('-', '')[:8]}"


_USERNAME = re.compile(r"^[a-z][a-z0-9._-]{1,62}$")


def username_for(platform_username: str, email: str) -> str:
    """A Fabriek username for a person the platform names: their platform username made
    valid (lowercase, starting with a letter), else their e-mail's local part."""
    for raw in (platform_username.split("@")[0], email.split("@")[0]):
        plain = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode().lower()
        name = re.sub(r"[^a-z0-9._-]+", "-", plain).strip("-._")
        if name and not name[0].isalpha():
            name = f"u{name}"
        if _USERNAME.match(name[:63]):
            return name[:63]
    return f"user-{slug(email)[:40] or 'unnamed'}"


def track_for(access_mode: str, known: list[str]) -> str | None:
    """The access track a platform access mode names ('Fast Lane' -> 'fast-lane'), or None
    when Fabriek has no such track."""
    code = slug(access_mode)
    return code if code in known else None


# EuroHPC's access modes as the platform's users know them.
EUROHPC_MODES = ("Playground", "Fast Lane", "Large Scale", "AI for Science")


def eurohpc_mode(access_mode: str) -> str:
    """The EuroHPC access mode an order's `access_mode` names, spelt as EuroHPC spells it
    ("fast-lane", "Fast Lane" and "fast_lane" are Fast Lane); another text as it is."""
    key = re.sub(r"[\s_-]+", " ", access_mode).strip().casefold()
    for mode in EUROHPC_MODES:
        if mode.casefold() == key:
            return mode
    return access_mode.strip()
