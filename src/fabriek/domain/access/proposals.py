"""The path of a proposal: proposal, checks, reviews, decision, allocation, final report
(the calls it is written to are in `fabriek.domain.access.calls`).

Pure rules and the shapes the services and the API exchange. No I/O and no clock reads:
every moment is passed in. The turnaround clock counts Dutch working days through
`fabriek.domain.calendar`.
"""

from __future__ import annotations

import calendar as gregorian
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from fabriek.domain.access.tracks import Track
from fabriek.domain.calendar import add_working_days, working_days_between
from fabriek.domain.errors import Conflict, InvalidInput
from fabriek.domain.gpus import GPU_TYPES

# A final report is due this many months after an allocation ends.
FINAL_REPORT_MONTHS: Final = 2


class ProposalState(StrEnum):
    """Where a proposal is on its path."""

    DRAFT = "draft"
    SUBMITTED = "submitted"
    # Passed the administrative check; technical and scientific reviews happen here.
    UNDER_REVIEW = "under-review"
    AWARDED = "awarded"
    PARTIALLY_AWARDED = "partially-awarded"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


S = ProposalState
TRANSITIONS: Final[Mapping[ProposalState, frozenset[ProposalState]]] = {
    S.DRAFT: frozenset({S.SUBMITTED, S.WITHDRAWN}),
    # A failed administrative check rejects the proposal at once.
    S.SUBMITTED: frozenset({S.UNDER_REVIEW, S.REJECTED, S.WITHDRAWN}),
    S.UNDER_REVIEW: frozenset({S.AWARDED, S.PARTIALLY_AWARDED, S.REJECTED, S.WITHDRAWN}),
    S.AWARDED: frozenset(),
    S.PARTIALLY_AWARDED: frozenset(),
    S.REJECTED: frozenset(),
    S.WITHDRAWN: frozenset(),
}
# States in which the turnaround clock runs: submitted and not yet decided.
CLOCK_RUNNING: Final = frozenset({S.SUBMITTED, S.UNDER_REVIEW})
FINAL_STATES: Final = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)

# What the action that causes each transition is called, for messages.
_ACTIONS: Final[Mapping[ProposalState, str]] = {
    S.SUBMITTED: "submit it",
    S.UNDER_REVIEW: "pass its administrative check",
    S.AWARDED: "award it",
    S.PARTIALLY_AWARDED: "award it in part",
    S.REJECTED: "reject it",
    S.WITHDRAWN: "withdraw it",
    S.DRAFT: "make it a draft again",
}


def check_transition(proposal_id: int, current: ProposalState, target: ProposalState) -> None:
    """Raise Conflict naming the state and what is possible when `current → target` is not
    allowed."""
    allowed = TRANSITIONS[current]
    if target in allowed:
        return
    if not allowed:
        raise Conflict(f"proposal {proposal_id} is {current.value}: it can no longer change")
    options = ", ".join(sorted(s.value for s in allowed))
    raise Conflict(
        f"proposal {proposal_id} is {current.value}, so you cannot {_ACTIONS[target]}; "
        f"from {current.value} it can become: {options}"
    )


class ReviewKind(StrEnum):
    """A technical review (by site staff: can the factory run it?) or a scientific or
    business review (by reviewers: is it worth it?)."""

    TECHNICAL = "technical"
    SCIENTIFIC = "scientific"


class DecisionKind(StrEnum):
    AWARD = "award"
    PARTIAL = "partial"
    REJECT = "reject"


DECIDED_STATE: Final[Mapping[DecisionKind, ProposalState]] = {
    DecisionKind.AWARD: S.AWARDED,
    DecisionKind.PARTIAL: S.PARTIALLY_AWARDED,
    DecisionKind.REJECT: S.REJECTED,
}

# Scores of a review: 1 (poor) to 5 (excellent).
MIN_SCORE: Final = 1
MAX_SCORE: Final = 5


# --- turnaround -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Turnaround:
    """A proposal's turnaround clock against its track's promise.

    `started_at` is the submission, or the call's cut-off on tracks whose clock starts
    there; None before submission. The promise is `promised_working_days` working days
    (Dutch public holidays do not count), due at `due_at`. `used_working_days` counts up to
    the decision, or up to now while undecided. `breached` when the decision came, or has
    not come by, `due_at`.
    """

    started_at: datetime | None
    due_at: datetime | None
    promised_working_days: int
    used_working_days: int
    decided_at: datetime | None
    breached: bool


def turnaround(
    track: Track,
    closes_at: datetime | None,
    submitted_at: datetime | None,
    decided_at: datetime | None,
    now: datetime,
) -> Turnaround:
    """The clock of a proposal on `track` in a call with cut-off `closes_at`."""
    days = track.decision_working_days
    if submitted_at is None:
        return Turnaround(None, None, days, 0, decided_at, False)
    started = submitted_at
    if track.clock_from_cutoff and closes_at is not None and closes_at > submitted_at:
        # Peer-reviewed tracks review a cut-off's proposals together: the promise runs
        # from the cut-off, not from each submission.
        started = closes_at
    due = add_working_days(started, days)
    end = decided_at if decided_at is not None else now
    used = working_days_between(started, end) if end > started else 0
    return Turnaround(started, due, days, used, decided_at, end >= due)


# --- conflicts of interest -------------------------------------------------------------------


def conflict_of_interest(
    reviewer: str,
    reviewer_organisation_id: int | None,
    reviewer_projects: frozenset[int],
    applicant_organisation_id: int,
    applicant_organisation: str,
    project_id: int,
) -> str | None:
    """Why this person may not review the proposal, or None.

    Nobody reviews a proposal from their own organisation, nor one for a project they are
    a member of."""
    if reviewer_organisation_id == applicant_organisation_id:
        return (
            f"{reviewer} works at {applicant_organisation}, the applicant's organisation: "
            "a conflict of interest"
        )
    if project_id in reviewer_projects:
        return f"{reviewer} is a member of the proposal's project: a conflict of interest"
    return None


def reviews_problem(track: Track, counted: Mapping[ReviewKind, int]) -> str | None:
    """Why a proposal on `track` cannot be awarded yet, given how many submitted reviews
    of each kind count (a declared conflict does not), or None.

    Every award needs a technical review by site staff; a peer-reviewed track also needs
    a scientific or business review."""
    if counted.get(ReviewKind.TECHNICAL, 0) < 1:
        return "an award needs a submitted technical review by site staff first"
    if track.peer_review and counted.get(ReviewKind.SCIENTIFIC, 0) < 1:
        return (
            f"the {track.name} track is peer reviewed: an award needs a submitted "
            "scientific review first (reviews that declare a conflict do not count)"
        )
    return None


# --- requests and decisions -----------------------------------------------------------------


def request_problem(requested: Mapping[str, float]) -> str | None:
    """Why raw GPU-hours per GPU type are not a valid request, or None."""
    if not requested:
        return "ask for GPU-hours of at least one GPU type, e.g. {'h100': 1000}"
    for gpu, hours in requested.items():
        if gpu not in GPU_TYPES:
            return f"no GPU type {gpu!r}; known: {', '.join(GPU_TYPES)}"
        if not hours > 0:
            return f"{gpu}: ask for more than 0 GPU-h, not {hours}"
    return None


def months_problem(track: Track, months: int) -> str | None:
    """Why an allocation of `months` months does not fit the track, or None."""
    if months in track.durations_months:
        return None
    offered = ", ".join(str(m) for m in track.durations_months)
    return f"the {track.name} track grants allocations of {offered} months, not {months}"


def allocation_months(track: Track, months: int | None) -> int:
    """The allocation's length: `months` when the track offers it (InvalidInput when not);
    the track's longest duration when none was asked."""
    if months is None:
        return max(track.durations_months)
    problem = months_problem(track, months)
    if problem:
        raise InvalidInput.on("months", problem)
    return months


def _hours(value: float) -> str:
    return f"{value:,.2f} GPU-h"


def decision_kind(
    requested: Mapping[str, float], awarded: Mapping[str, float], reason: str | None
) -> DecisionKind:
    """What awarding `awarded` (raw GPU-hours per type) against `requested` is.

    Nothing awarded is a rejection; less than asked of any type, a partial award; else an
    award. Awarding more of a type than was asked needs a reason, and so do a partial
    award and a rejection: an applicant is owed the why. Raises InvalidInput otherwise.
    """
    for gpu, hours in awarded.items():
        if gpu not in GPU_TYPES:
            raise InvalidInput.on("awarded", f"no GPU type {gpu!r}; known: {', '.join(GPU_TYPES)}")
        if hours < 0:
            raise InvalidInput.on("awarded", f"{gpu}: cannot award {hours} GPU-h")
    has_reason = bool(reason and reason.strip())
    over = [
        f"{gpu}: {_hours(hours)} awarded, {_hours(requested.get(gpu, 0.0))} asked"
        for gpu, hours in sorted(awarded.items())
        if hours > requested.get(gpu, 0.0)
    ]
    if over and not has_reason:
        raise InvalidInput.on(
            "reason", f"awarding more than requested ({'; '.join(over)}) needs a reason"
        )
    if not any(hours > 0 for hours in awarded.values()):
        kind = DecisionKind.REJECT
    elif any(awarded.get(gpu, 0.0) < hours for gpu, hours in requested.items()):
        kind = DecisionKind.PARTIAL
    else:
        kind = DecisionKind.AWARD
    if kind is not DecisionKind.AWARD and not has_reason:
        what = "a rejection" if kind is DecisionKind.REJECT else "a partial award"
        raise InvalidInput.on("reason", f"{what} needs a reason the applicant can read")
    return kind


# --- dates: allocation periods and final reports --------------------------------------------


def add_months(moment: datetime, months: int) -> datetime:
    """The same day and time `months` calendar months later (or earlier, when negative);
    the last day of the month where that day does not exist (31 January + 1 month is
    28 or 29 February)."""
    index = moment.year * 12 + (moment.month - 1) + months
    year, month0 = divmod(index, 12)
    month = month0 + 1
    day = min(moment.day, gregorian.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def final_report_due(ends_at: datetime) -> datetime:
    """When the final report of an allocation ending at `ends_at` is due."""
    return add_months(ends_at, FINAL_REPORT_MONTHS)


def report_overdue(ends_at: datetime, filed_at: datetime | None, now: datetime) -> bool:
    """Whether an allocation's final report is overdue at `now`: not filed, and its due
    moment has passed."""
    return filed_at is None and now >= final_report_due(ends_at)


# --- the shapes the API exchanges -----------------------------------------------------------

Residency = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,19}$"),
    Field(
        description="where the data may be processed: 'any', 'eu' (EU/EEA law), 'nl' "
        "(Dutch sites only) or one site's name"
    ),
]
# Residency words that are not site names.
RESIDENCY_ANY: Final = "any"
RESIDENCY_EU: Final = "eu"
RESIDENCY_NL: Final = "nl"


class AiRisk(StrEnum):
    """The applicant's own reading of the AI Act's risk categories for the work."""

    MINIMAL = "minimal"
    LIMITED = "limited"
    HIGH = "high"
    PROHIBITED = "prohibited"


class AiActAssessment(BaseModel):
    """The applicant's AI Act self-assessment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    risk: AiRisk = Field(description="the AI Act risk category the applicant sees")
    general_purpose_model: bool = Field(
        default=False, description="whether the work trains a general-purpose AI model"
    )
    notes: str = Field(default="", max_length=5000)

    @model_validator(mode="after")
    def _not_prohibited(self) -> AiActAssessment:
        if self.risk is AiRisk.PROHIBITED:
            raise ValueError(
                "the factory cannot support practices the AI Act prohibits (Article 5)"
            )
        return self


class ProposalDraft(BaseModel):
    """A new proposal: written as a draft, submitted later."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    call: str = Field(min_length=1, max_length=63, description="the call's code or id")
    project: str = Field(min_length=1, max_length=63, description="the project's name or id")
    title: str = Field(min_length=1, max_length=200)
    abstract: str = Field(min_length=1, max_length=20_000)
    sector: str = Field(min_length=1, max_length=60, description="e.g. health, energy")
    requested: dict[str, float] = Field(
        description="raw GPU-hours per GPU type, e.g. {'h100': 4000, 'a100': 1000}"
    )
    months: int | None = Field(
        default=None, ge=1, le=36, description="allocation length; one the track offers"
    )
    datasets: list[str] = Field(default_factory=list, max_length=100)
    ai_act: AiActAssessment
    residency: Residency = RESIDENCY_ANY


class AdminCheck(BaseModel):
    """The access team's administrative check: complete and eligible, or not (and why)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    passed: bool
    note: str = Field(default="", max_length=500, description="required when it fails")


class ReviewerAssignment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reviewer: str = Field(min_length=1, max_length=63, description="username")
    kind: ReviewKind


class ReviewSubmission(BaseModel):
    """A reviewer's review, or their declared conflict of interest (then nothing else)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ReviewKind
    score: int | None = Field(default=None, ge=MIN_SCORE, le=MAX_SCORE)
    feasible: bool | None = Field(default=None, description="technical reviews: can it run?")
    comment: str = Field(default="", max_length=20_000)
    conflict: str | None = Field(
        default=None, max_length=500, description="declare a conflict of interest instead"
    )


class DecisionDraft(BaseModel):
    """The decision. `awarded` defaults to what was asked for an award."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decision: DecisionKind
    awarded: dict[str, float] | None = Field(default=None, description="raw GPU-hours per GPU type")
    reason: str | None = Field(default=None, max_length=5000)
    months: int | None = Field(default=None, ge=1, le=36)


class FinalReportDraft(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    report: str = Field(min_length=1, max_length=100_000)


class TurnaroundOut(BaseModel):
    """The turnaround clock: started, due, working days promised and used, breached."""

    started_at: datetime | None
    due_at: datetime | None
    promised_working_days: int
    used_working_days: int
    decided_at: datetime | None
    breached: bool


class Review(BaseModel):
    """One review. `reviewer` is hidden from applicants."""

    id: int
    proposal_id: int
    proposal_title: str
    reviewer: str | None
    kind: ReviewKind
    score: int | None
    feasible: bool | None
    comment: str
    conflict: str | None
    assigned_at: datetime
    submitted_at: datetime | None


class AllocationSummary(BaseModel):
    """A budget granted by a decision, with its final report's due date."""

    id: int
    project: str
    proposal_id: int | None
    track: str
    awarded_gpu_hours: float = Field(description="normalised GPU-h awarded")
    awarded_raw: dict[str, float] = Field(description="raw GPU-h per GPU type as awarded")
    sites: list[str]
    preemptible: bool
    tier: int
    starts_at: datetime
    ends_at: datetime
    final_report_due: datetime
    final_report_at: datetime | None


class Proposal(BaseModel):
    """A proposal as its viewer may see it."""

    id: int
    call: str
    call_id: int
    track: str
    project: str
    project_id: int
    organisation: str
    organisation_id: int
    author: str
    title: str
    abstract: str
    sector: str
    requested: dict[str, float] = Field(description="raw GPU-h per GPU type")
    requested_gpu_hours: float = Field(description="normalised GPU-h")
    months: int | None
    datasets: list[str]
    ai_act: dict[str, object]
    residency: str
    state: ProposalState
    admin_check: str | None
    submitted_at: datetime | None
    decided_at: datetime | None
    decision: DecisionKind | None
    decision_reason: str | None
    awarded: dict[str, float] | None
    turnaround: TurnaroundOut
    breach_flagged_at: datetime | None
    reviews: list[Review]
    allocation: AllocationSummary | None
    created_at: datetime
