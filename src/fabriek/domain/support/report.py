"""A desk's month in numbers: tickets by category and sector, time to first answer and to
resolution, service levels broken, expert hours delivered. Pure: the service gathers the
tickets, these rules count them."""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from fabriek.domain.calendar import AMSTERDAM
from fabriek.domain.support.service_levels import ServiceClock
from fabriek.domain.support.tickets import Category

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
UNKNOWN_SECTOR = "unknown"


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """The start and end (exclusive) of a month `YYYY-MM`, at midnight in Amsterdam, where
    the hubs keep their books; ValueError for anything else."""
    found = _MONTH.match(month.strip())
    if (
        found is None
        or not 1 <= int(found.group(2)) <= 12
        or not 2000 <= int(found.group(1)) <= 2100
    ):
        raise ValueError(f"{month!r} is not a month; write it as YYYY-MM, e.g. 2026-11")
    year, number = int(found.group(1)), int(found.group(2))
    start = datetime(year, number, 1, tzinfo=AMSTERDAM)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=AMSTERDAM)
    return start, end


@dataclass(frozen=True)
class TicketFacts:
    """What the report needs of one ticket opened in the month."""

    category: Category
    sector: str
    opened_at: datetime
    clock: ServiceClock


class DurationStats(BaseModel):
    """Durations in hours (wall clock) over the tickets that have one, and how many of
    those came within the service level."""

    count: int
    median_hours: float | None
    mean_hours: float | None
    within_service_level: int


class BreachCounts(BaseModel):
    first_answer: int
    resolution: int


class SupportReport(BaseModel):
    """One desk's month: the tickets opened in it that the desk holds now."""

    hub: str = Field(description="a hub's code, or central")
    hub_name: str
    month: str
    tickets: int
    by_category: dict[str, int]
    by_sector: dict[str, int]
    by_category_and_sector: dict[str, dict[str, int]]
    first_answer: DurationStats
    resolution: DurationStats
    breaches: BreachCounts
    still_open: int
    expert_hours: float = Field(description="consultation hours the hub's experts delivered")
    expert_hours_by_sector: dict[str, float] = Field(
        description="by the expertise network's sectors: start-ups, smes, industry, research, "
        "public"
    )
    notes: list[str]


def _hours(span: timedelta) -> float:
    return span.total_seconds() / 3600.0


def _stats(spans: list[tuple[timedelta, bool]]) -> DurationStats:
    if not spans:
        return DurationStats(count=0, median_hours=None, mean_hours=None, within_service_level=0)
    hours = [_hours(s) for s, _ in spans]
    return DurationStats(
        count=len(spans),
        median_hours=round(statistics.median(hours), 2),
        mean_hours=round(statistics.fmean(hours), 2),
        within_service_level=sum(1 for _, within in spans if within),
    )


def summarise(
    hub: str,
    hub_name: str,
    month: str,
    tickets: Iterable[TicketFacts],
    expert_hours_by_sector: Mapping[str, float],
    notes: Iterable[str] = (),
) -> SupportReport:
    """Count the month's tickets. Breaches are those of the clocks as given (the caller
    reads them at one moment); a ticket counts towards a duration once it has one."""
    facts = list(tickets)
    by_pair: dict[str, Counter[str]] = {}
    for t in facts:
        by_pair.setdefault(t.category.value, Counter())[t.sector] += 1
    first = [
        (t.clock.first_answer_at - t.opened_at, not t.clock.first_answer_breached)
        for t in facts
        if t.clock.first_answer_at is not None
    ]
    resolved = [
        (t.clock.resolved_at - t.opened_at, not t.clock.resolution_breached)
        for t in facts
        if t.clock.resolved_at is not None
    ]
    experts = {k: round(v, 2) for k, v in sorted(expert_hours_by_sector.items()) if v}
    return SupportReport(
        hub=hub,
        hub_name=hub_name,
        month=month,
        tickets=len(facts),
        by_category=dict(sorted(Counter(t.category.value for t in facts).items())),
        by_sector=dict(sorted(Counter(t.sector for t in facts).items())),
        by_category_and_sector={c: dict(sorted(n.items())) for c, n in sorted(by_pair.items())},
        first_answer=_stats(first),
        resolution=_stats(resolved),
        breaches=BreachCounts(
            first_answer=sum(1 for t in facts if t.clock.first_answer_breached),
            resolution=sum(1 for t in facts if t.clock.resolution_breached),
        ),
        still_open=sum(1 for t in facts if t.clock.resolved_at is None),
        expert_hours=round(sum(experts.values()), 2),
        expert_hours_by_sector=experts,
        notes=list(notes),
    )
