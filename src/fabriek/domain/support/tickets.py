"""A support ticket's own words: its categories, priorities and statuses, the steps a status
may take, what a ticket is about, and how people name a ticket (T42).

Pure: no I/O and no clock reads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from fabriek.domain.inputs import is_id


class Category(StrEnum):
    """What a ticket is about, as the user picks it."""

    ACCESS = "access-and-proposals"
    JOBS = "jobs-and-software"
    DATA = "data-and-privacy"
    AI_ACT = "ai-act"
    ENERGY = "energy-and-sustainability"
    ONBOARDING = "onboarding"
    OTHER = "other"


CATEGORY_NAMES: Final = {
    Category.ACCESS: "Access and proposals",
    Category.JOBS: "Jobs and software",
    Category.DATA: "Data and privacy",
    Category.AI_ACT: "AI Act questions",
    Category.ENERGY: "Energy and sustainability",
    Category.ONBOARDING: "Onboarding",
    Category.OTHER: "Other",
}


def parse_category(text: str) -> Category:
    """A category by its code (`jobs-and-software`) or its first word (`jobs`); ValueError
    names the known ones."""
    wanted = text.strip().lower()
    for category in Category:
        if wanted in {category.value, category.value.split("-and-")[0]}:
            return category
    known = ", ".join(c.value.split("-and-")[0] for c in Category)
    raise ValueError(f"no category {text!r}; known: {known}")


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class Status(StrEnum):
    """Where a ticket is: nobody has looked (new), someone has (triaged), the next step is the
    user's (waiting-for-user), answered (resolved, reopened by the user's reply), done (closed,
    final)."""

    NEW = "new"
    TRIAGED = "triaged"
    WAITING = "waiting-for-user"
    RESOLVED = "resolved"
    CLOSED = "closed"


OPEN_STATUSES: Final = frozenset({Status.NEW, Status.TRIAGED, Status.WAITING})
# Where each status may go next. A closed ticket stays closed: a follow-up is a new ticket.
TRANSITIONS: Final[Mapping[Status, frozenset[Status]]] = {
    Status.NEW: frozenset({Status.TRIAGED, Status.WAITING, Status.RESOLVED, Status.CLOSED}),
    Status.TRIAGED: frozenset({Status.WAITING, Status.RESOLVED, Status.CLOSED}),
    Status.WAITING: frozenset({Status.TRIAGED, Status.RESOLVED, Status.CLOSED}),
    Status.RESOLVED: frozenset({Status.TRIAGED, Status.CLOSED}),
    Status.CLOSED: frozenset(),
}
# What the user's side (author, project members) may do to a ticket themselves: close it.
# Everything else is the handling staff's; a user's reply reopens by itself.
USER_MAY_SET: Final = frozenset({Status.CLOSED})


def may_move(current: Status, target: Status) -> bool:
    """Whether a ticket may go from `current` to `target`."""
    return target in TRANSITIONS[current]


def after_user_reply(current: Status) -> Status:
    """The status once the user has replied: waiting and resolved tickets are the staff's
    turn again; a closed one takes no replies (the caller refuses it)."""
    if current in {Status.WAITING, Status.RESOLVED}:
        return Status.TRIAGED
    return current


def after_staff_reply(current: Status) -> Status:
    """The status once the handling staff answered: a new ticket has been looked at."""
    return Status.TRIAGED if current is Status.NEW else current


class AboutKind(StrEnum):
    JOB = "job"
    PROPOSAL = "proposal"
    DATASET = "dataset"


@dataclass(frozen=True)
class About:
    """What a ticket is about: `job:42`, `proposal:7` or `dataset:PROJECT/NAME`."""

    kind: AboutKind
    ref: str

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.ref}"


_ABOUT = re.compile(r"^(job|proposal|dataset):(.+)$")


def parse_about(text: str) -> About:
    """`job:42`, `proposal:7` or `dataset:PROJECT/NAME`; ValueError says what is expected."""
    found = _ABOUT.match(text.strip())
    expected = "expected job:ID, proposal:ID or dataset:PROJECT/NAME"
    if found is None:
        raise ValueError(f"{text!r}: {expected}")
    kind, ref = AboutKind(found.group(1)), found.group(2).strip()
    if kind in {AboutKind.JOB, AboutKind.PROPOSAL}:
        if not is_id(ref) or int(ref) < 1:
            raise ValueError(f"{text!r}: a {kind.value} is named by its number, e.g. {kind}:42")
        ref = str(int(ref))
    elif ref.count("/") != 1 or not all(ref.split("/")):
        raise ValueError(
            f"{text!r}: a dataset is named PROJECT/NAME, e.g. dataset:my-project/scans"
        )
    return About(kind, ref)


def ticket_reference(ticket_id: int) -> str:
    """How people name a ticket: T42."""
    return f"T{ticket_id}"


def parse_ticket_reference(text: str) -> int:
    """`42` or `T42` (any case); ValueError otherwise."""
    cleaned = text.strip().lstrip("#")
    if cleaned[:1] in {"T", "t"}:
        cleaned = cleaned[1:]
    if not is_id(cleaned) or int(cleaned) < 1:
        raise ValueError(f"{text!r} is not a ticket; name it by its number, e.g. T42 or 42")
    return int(cleaned)
