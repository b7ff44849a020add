"""The service-level clocks of a ticket: a first answer and a resolution within so many
Dutch working days, paused while the ticket waits for the user.

Pure: every moment comes in as an argument, so the clocks are tested over years of working
days and holidays without waiting for any of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from fabriek.domain.calendar import add_working_days, working_days_between
from fabriek.domain.support.routing import ServiceLevel, SupportConfig


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
