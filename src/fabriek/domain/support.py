"""The support and service centre: tickets, where they go, what their service levels promise,
and the shapes the services and the API exchange.

Pure: no I/O and no clock reads. Every moment comes in as an argument, so the service-level
clocks are tested over years of working days and holidays without waiting for any of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from fabriek.domain.calendar import add_working_days, working_days_between
from fabriek.domain.geography import HUBS, Hub, Province, hub_for_province

# The queue of the central support desk (the access team and admins), beside the hubs'.
CENTRAL: Final = "central"
CENTRAL_NAME: Final = "Central support desk"


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


# --- routing ----------------------------------------------------------------------------------


def queue_name(queue: str) -> str:
    """The display name of a queue: a hub's name or the central desk's."""
    if queue == CENTRAL:
        return CENTRAL_NAME
    try:
        return HUBS[Hub(queue)].name
    except ValueError:
        return queue


def parse_queue(text: str) -> str:
    """A queue by its code (`brightlands`, `central`); ValueError names the known ones."""
    wanted = text.strip().lower()
    if wanted == CENTRAL or wanted in {h.value for h in Hub}:
        return wanted
    known = ", ".join([*(h.value for h in Hub), CENTRAL])
    raise ValueError(f"no hub or desk {text!r}; known: {known}")


@dataclass(frozen=True)
class ServiceLevel:
    """A category's promise, in Dutch working days from the moment the ticket was opened:
    a first answer within `first_answer_working_days`, a resolution within
    `resolution_working_days` (plus the whole working days spent waiting for the user)."""

    first_answer_working_days: int
    resolution_working_days: int


@dataclass(frozen=True)
class SupportConfig:
    """Who owns which category and what each promises: the shipped support.toml or an
    operator's file."""

    version: str
    # Categories the central desk answers, whatever the user's province.
    central: frozenset[Category]
    levels: Mapping[Category, ServiceLevel]
    # A resolved ticket the user did not reopen closes by itself after this many working days.
    close_resolved_after_working_days: int


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where} must be a whole number of working days, 0 or more")
    return value


def parse_support_config(data: Mapping[str, Any]) -> SupportConfig:
    """Check and read a parsed support.toml; ValueError names the entry at fault."""
    version = data.get("version")
    if not isinstance(version, str) or not version:
        raise ValueError("version: give the file's version as a string, e.g. '2026-11'")
    routing = data.get("routing", {})
    if not isinstance(routing, Mapping):
        raise ValueError("[routing] must be a table")
    central_codes = routing.get("central", [])
    if not isinstance(central_codes, list):
        raise ValueError("routing.central must be a list of categories")
    central: set[Category] = set()
    for code in central_codes:
        try:
            central.add(Category(code))
        except ValueError:
            raise ValueError(
                f"routing.central: no category {code!r}; known: {', '.join(Category)}"
            ) from None
    raw_levels = data.get("service_levels")
    if not isinstance(raw_levels, Mapping):
        raise ValueError("[service_levels.CATEGORY] tables are missing")
    levels: dict[Category, ServiceLevel] = {}
    for code, entry in raw_levels.items():
        try:
            category = Category(code)
        except ValueError:
            raise ValueError(
                f"service_levels.{code}: no such category; known: {', '.join(Category)}"
            ) from None
        if not isinstance(entry, Mapping):
            raise ValueError(f"service_levels.{code} must be a table")
        first = _positive_int(
            entry.get("first_answer_working_days"),
            f"service_levels.{code}.first_answer_working_days",
        )
        resolution = _positive_int(
            entry.get("resolution_working_days"), f"service_levels.{code}.resolution_working_days"
        )
        if resolution < first:
            raise ValueError(
                f"service_levels.{code}: resolution_working_days ({resolution}) is shorter "
                f"than first_answer_working_days ({first})"
            )
        levels[category] = ServiceLevel(first, resolution)
    missing = [c.value for c in Category if c not in levels]
    if missing:
        raise ValueError(f"service_levels: no entry for {', '.join(missing)}")
    close_after = _positive_int(
        data.get("close_resolved_after_working_days", 5), "close_resolved_after_working_days"
    )
    return SupportConfig(version, frozenset(central), levels, close_after)


def route(category: Category, province: Province | None, config: SupportConfig) -> str:
    """The queue a new ticket goes to: the central desk for the categories it owns, else the
    hub that serves the province of the user's organisation (the central desk when the user
    has none)."""
    if category in config.central or province is None:
        return CENTRAL
    return hub_for_province(province).value


# --- service levels ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Wait:
    """A stretch of time a ticket waited for the user: from `start` to `end` (None: still)."""

    start: datetime
    end: datetime | None


@dataclass(frozen=True)
class ServiceClock:
    """A ticket's two clocks against its category's service level.

    The first answer is due `first_answer_due` (the end of the promised working day); it is
    breached when no answer came before then. The resolution is due `resolution_due`: the
    promise plus `paused_working_days`, the whole working days the ticket waited for the
    user; breached when it was not resolved before then. A clock stops at the answer or
    the resolution; an unanswered ticket that is resolved or closed stops its first clock too.
    """

    first_answer_due: datetime
    first_answer_at: datetime | None
    first_answer_breached: bool
    resolution_due: datetime
    resolved_at: datetime | None
    resolution_breached: bool
    paused_working_days: int


def paused_working_days(waits: Iterable[Wait], until: datetime) -> int:
    """The whole working days spent waiting for the user before `until`: each wait counts the
    working days after the day it began through the day it ended (a wait within one day
    counts none)."""
    total = 0
    for wait in waits:
        if wait.start >= until:
            continue
        end = until if wait.end is None or wait.end > until else wait.end
        total += working_days_between(wait.start, end)
    return total


def service_clock(
    level: ServiceLevel,
    opened_at: datetime,
    first_answer_at: datetime | None,
    resolved_at: datetime | None,
    waits: Iterable[Wait],
    now: datetime,
) -> ServiceClock:
    """The clocks of a ticket opened at `opened_at`, as they stand at `now`.

    `first_answer_at`: the handling staff's first reply the user could read; `resolved_at`:
    when it was last resolved or closed (None while open). Times must be timezone-aware.
    """
    first_due = add_working_days(opened_at, level.first_answer_working_days)
    answered = first_answer_at if first_answer_at is not None else resolved_at
    first_end = answered if answered is not None else now
    stopped = resolved_at if resolved_at is not None else now
    paused = paused_working_days(waits, stopped)
    resolution_due = add_working_days(opened_at, level.resolution_working_days + paused)
    return ServiceClock(
        first_answer_due=first_due,
        first_answer_at=first_answer_at,
        first_answer_breached=first_end >= first_due,
        resolution_due=resolution_due,
        resolved_at=resolved_at,
        resolution_breached=stopped >= resolution_due,
        paused_working_days=paused,
    )


def auto_close_due(resolved_at: datetime, config: SupportConfig) -> datetime:
    """When a resolved ticket that nobody reopened closes by itself."""
    return add_working_days(resolved_at, config.close_resolved_after_working_days)


# --- what a ticket is about -------------------------------------------------------------------


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
        if not ref.isdigit() or int(ref) < 1:
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
    if not cleaned.isdigit() or int(cleaned) < 1:
        raise ValueError(f"{text!r} is not a ticket; name it by its number, e.g. T42 or 42")
    return int(cleaned)


# --- attachments ------------------------------------------------------------------------------

DEFAULT_ATTACHMENT_TYPES: Final = (
    "text/plain",
    "text/markdown",
    "text/csv",
    "application/json",
    "application/pdf",
    "image/png",
    "image/jpeg",
)
# What the first bytes of a file of each type look like: a file must be what it says.
_SIGNATURES: Final = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
}
_TEXT_TYPES: Final = frozenset({"application/json", "application/x-yaml", "application/yaml"})


def is_text_type(media_type: str) -> bool:
    return media_type.startswith("text/") or media_type in _TEXT_TYPES


def media_type_of(header: str | None) -> str:
    """The bare media type of a Content-Type value (`text/plain; charset=utf-8` → text/plain)."""
    return (header or "").split(";", 1)[0].strip().lower()


def parse_media_types(text: str) -> frozenset[str]:
    """A comma-separated list of media types, as the setting holds it."""
    return frozenset(t for t in (media_type_of(p) for p in text.split(",")) if t)


def check_attachment_type(media_type: str, allowed: frozenset[str]) -> str | None:
    """Why a declared type is refused, or None when it is allowed."""
    if not media_type:
        return "say what kind of file it is (its Content-Type), e.g. text/plain"
    if media_type not in allowed:
        return f"files of type {media_type} are not accepted; allowed: {', '.join(sorted(allowed))}"
    return None


def check_attachment_start(media_type: str, head: bytes) -> str | None:
    """Why a file's first bytes do not fit its declared type, or None when they do (text is
    checked as a whole by the caller; here only for NUL bytes, which text never holds)."""
    signatures = _SIGNATURES.get(media_type)
    if signatures is not None and not head.startswith(signatures):
        return f"the file does not look like {media_type} (its first bytes say otherwise)"
    if is_text_type(media_type) and b"\x00" in head:
        return f"the file does not look like {media_type}: it holds binary data"
    return None


def safe_filename(name: str) -> str:
    """A file name fit to show and to offer as a download: no directories, no control or
    quoting characters, at most 200 characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(ch for ch in base if ch.isprintable() and ch not in '"<>|:*?').strip(" .")
    return cleaned[:200] or "attachment"


# --- the shapes the API exchanges -------------------------------------------------------------


class TicketDraft(BaseModel):
    """A new ticket, as the user writes it."""

    model_config = ConfigDict(extra="forbid")

    subject: str = Field(min_length=3, max_length=200)
    body: str = Field(default="", max_length=50_000, description="the question, in Markdown")
    category: str = Field(
        description="access-and-proposals, jobs-and-software, data-and-privacy, ai-act, "
        "energy-and-sustainability, onboarding or other (or its first word: jobs, data, ...)"
    )
    priority: str = Field(default="normal", description="low, normal, high or urgent")
    about: str | None = Field(
        default=None, description="job:ID, proposal:ID or dataset:PROJECT/NAME of your projects"
    )
    project: str | None = Field(
        default=None, description="one of your projects, so its members see the ticket too"
    )
    share_context: bool = Field(
        default=False,
        description="consent to attach what Fabriek knows of `about`: a job's state, reason, "
        "site, last log lines and its allocation's budget",
    )


class MessageDraft(BaseModel):
    """A reply to a ticket, or an internal note for the staff handling it."""

    model_config = ConfigDict(extra="forbid")

    body: str = Field(min_length=1, max_length=50_000)
    internal: bool = Field(
        default=False, description="a note for the handling staff only, never shown or mailed"
    )
    status: str | None = Field(
        default=None, description="move the ticket on with the reply (staff), e.g. resolved"
    )


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: str = Field(description="triaged, waiting-for-user, resolved or closed")
    note: str | None = Field(default=None, max_length=2000)


class Handover(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(description="a hub's code (brightlands, ...) or central")
    note: str | None = Field(default=None, max_length=2000, description="why, for the next desk")


class TicketChange(BaseModel):
    """Triage: a new priority or category (a field left out stays as it is)."""

    model_config = ConfigDict(extra="forbid")

    priority: str | None = None
    category: str | None = None


class JobContext(BaseModel):
    id: int
    name: str | None
    project: str
    state: str
    reason: str | None
    site: str | None
    exit_code: int | None
    gpus: int
    gpu_type: str | None
    submitted_at: datetime
    started_at: datetime | None
    ended_at: datetime | None


class BudgetContext(BaseModel):
    """The allocation a job was charged to, in normalised GPU-hours, when the ticket opened."""

    allocation_id: int
    track: str
    awarded_gpu_hours: float
    consumed_gpu_hours: float
    committed_gpu_hours: float
    remaining_gpu_hours: float
    ends_at: datetime


class ProposalContext(BaseModel):
    id: int
    title: str
    state: str
    call: str
    track: str
    submitted_at: datetime | None
    decided_at: datetime | None


class DatasetContext(BaseModel):
    project: str
    name: str
    classification: str
    residency: str
    versions: int


class TicketContext(BaseModel):
    """What Fabriek attached, with the user's consent, when the ticket was opened."""

    captured_at: datetime
    job: JobContext | None = None
    log_lines: list[str] = Field(
        default_factory=list, description="the job's last lines of standard output"
    )
    error_lines: list[str] = Field(
        default_factory=list, description="the job's last lines of standard error"
    )
    budget: BudgetContext | None = None
    proposal: ProposalContext | None = None
    dataset: DatasetContext | None = None


class ServiceLevelView(BaseModel):
    first_answer_working_days: int
    first_answer_due: datetime
    first_answer_at: datetime | None
    first_answer_breached: bool
    resolution_working_days: int
    resolution_due: datetime
    resolved_at: datetime | None
    resolution_breached: bool
    paused_working_days: int
    escalated_at: datetime | None = Field(description="when the breach was escalated (once)")


class Message(BaseModel):
    id: int
    author: str | None = Field(description="username; None for the system")
    author_name: str
    staff: bool = Field(description="written by the staff handling the ticket")
    internal: bool
    via: str = Field(description="api or email")
    body: str
    created_at: datetime


class Attachment(BaseModel):
    id: int
    name: str
    media_type: str
    size_bytes: int
    sha256: str
    internal: bool
    uploaded_by: str
    uploaded_at: datetime


class TicketEvent(BaseModel):
    """A step in the ticket's history: a status change, a handover, a triage, a breach."""

    at: datetime
    kind: str
    by: str | None
    from_value: str | None
    to_value: str | None
    note: str | None


class TicketSummary(BaseModel):
    id: int
    reference: str = Field(description="T42")
    subject: str
    category: Category
    priority: Priority
    status: Status
    queue: str = Field(description="the hub's code, or central")
    queue_name: str
    author: str
    project: str | None
    about: str | None
    created_at: datetime
    updated_at: datetime
    first_answer_due: datetime
    resolution_due: datetime
    breached: bool = Field(description="a service level is broken")


class Ticket(TicketSummary):
    """One ticket as the caller may see it: internal notes and internal attachments appear
    only to the staff handling it."""

    body: str
    sector: str | None = Field(description="the kind of the author's organisation")
    organisation: str | None
    share_context: bool
    context: TicketContext | None
    service_level: ServiceLevelView
    messages: list[Message]
    attachments: list[Attachment]
    history: list[TicketEvent]
    handling: bool = Field(description="the caller handles this ticket (staff)")
    reply_address: str | None = Field(description="e-mail replies to this address join the ticket")


class CategoryInfo(BaseModel):
    code: Category
    name: str
    owner: str = Field(description="central, or hub: the hub of the user's province")
    first_answer_working_days: int
    resolution_working_days: int


class InboundResult(BaseModel):
    """What became of an e-mail piped in: added to a ticket, bounced to its sender (with the
    reason), a duplicate of one already added, or ignored (automatic mail: no bounce loops)."""

    outcome: str = Field(description="added, bounced, duplicate or ignored")
    ticket: str | None
    reason: str
