"""A job's states and the moves between them, in the words `squeue` users know.

Apart from the job's models (domain/jobs.py) so that a caller that needs only the states
(the CLI's `fabriek jobs`) does not import Pydantic for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from fabriek.domain.errors import Conflict


class JobState(StrEnum):
    """Where a job is in its life, in the words `squeue` users know."""

    PENDING = "pending"
    STARTING = "starting"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed-out"
    PREEMPTED = "preempted"
    LOST = "lost"


TERMINAL_STATES = frozenset(
    {JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.TIMED_OUT, JobState.LOST}
)
ACTIVE_STATES = frozenset({JobState.STARTING, JobState.RUNNING})
# The same as the plain text the store's `state` columns hold, for its queries and rows.
ACTIVE_STATE_VALUES = tuple(sorted(s.value for s in ACTIVE_STATES))
TERMINAL_STATE_VALUES = tuple(sorted(s.value for s in TERMINAL_STATES))

# The declared rules: from each state, the states a job may move to. Anything else is a bug
# or a race, and is refused. PREEMPTED is not terminal: a preempted job is requeued.
_ENDINGS = frozenset(
    {JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.TIMED_OUT, JobState.LOST}
)
TRANSITIONS: Mapping[JobState, frozenset[JobState]] = {
    # PENDING -> FAILED: the engine refused the job outright at submission.
    JobState.PENDING: frozenset({JobState.STARTING, JobState.CANCELLED, JobState.FAILED}),
    # STARTING -> PENDING: the site's cluster was unreachable; the job waits again.
    JobState.STARTING: _ENDINGS | {JobState.RUNNING, JobState.PENDING},
    JobState.RUNNING: _ENDINGS | {JobState.PREEMPTED},
    JobState.PREEMPTED: frozenset({JobState.PENDING, JobState.CANCELLED}),
    **{s: frozenset() for s in TERMINAL_STATES},
}


def can_transition(old: JobState, new: JobState) -> bool:
    """Whether the rules allow `old` -> `new`."""
    return new in TRANSITIONS[old]


def check_transition(old: JobState, new: JobState) -> None:
    """Refuse a transition the rules do not allow."""
    if not can_transition(old, new):
        raise Conflict(f"a {old} job cannot become {new}")
