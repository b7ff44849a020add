"""Allocations: the shapes the API and the services exchange for budgets of GPU-hours."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class AllocationDraft(BaseModel):
    """A grant the access team makes directly (awards from proposals make their own)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    project: str = Field(description="project name or id")
    track: str = Field(description="the access track it counts under, e.g. fast-lane")
    gpu_hours: dict[str, float] = Field(
        description="raw GPU-hours per GPU type, e.g. {'h100': 1000}; 'any' for no type",
        min_length=1,
    )
    sites: list[str] = Field(default_factory=list, description="sites it may be spent on; [] any")
    starts_at: datetime | None = Field(default=None, description="default: now")
    ends_at: datetime | None = Field(
        default=None, description="default: start + the track's shortest duration"
    )


class SourceKind(StrEnum):
    """Where an allocation came from."""

    NATIONAL_CALL = "national-call"  # an award of one of this factory's own access calls
    EUROHPC = "eurohpc"  # an order of the EuroHPC federation platform, in one of its modes
    OPERATOR = "operator"  # granted directly by the access team


class AllocationSource(BaseModel):
    """Where an allocation came from: its kind, and the call's code or the EuroHPC access
    mode (Playground, Fast Lane, Large Scale, AI for Science) it was granted in."""

    kind: SourceKind
    name: str = Field(description="the call's code and title, the EuroHPC mode, or 'operator'")
    call: str | None = Field(default=None, description="the national call's code")
    platform_resource: str | None = Field(
        default=None, description="the federation platform's resource UUID"
    )


class OrderTurnaround(BaseModel):
    """The turnaround clock of an allocation ordered on the federation platform: from the
    platform's decision (its approval of the order) to when the allocation could be used
    here, and to its first job's start."""

    decided_at: datetime = Field(description="the platform's approval of the order")
    usable_at: datetime = Field(description="when the allocation could first be used here")
    first_job_at: datetime | None = Field(description="its first job's start; None: none yet")
    hours_to_usable: float
    hours_to_first_job: float | None


def order_turnaround(
    decided_at: datetime, created_at: datetime, starts_at: datetime, first_job_at: datetime | None
) -> OrderTurnaround:
    """The clock of an ordered allocation: usable once it exists here and has started (the
    later of the two); hours from the platform's decision, never negative (a clock skewed
    between the platform and this factory counts as no wait)."""
    usable = max(created_at, starts_at)

    def hours(since: datetime, until: datetime) -> float:
        return round(max(0.0, (until - since).total_seconds() / 3600), 3)

    return OrderTurnaround(
        decided_at=decided_at,
        usable_at=usable,
        first_job_at=first_job_at,
        hours_to_usable=hours(decided_at, usable),
        hours_to_first_job=None if first_job_at is None else hours(decided_at, first_job_at),
    )


class MonthlyTurnaround(BaseModel):
    """The median turnaround of the allocations the platform decided in one month."""

    month: str = Field(description="2026-03: the month of the platform's decision")
    allocations: int
    median_hours_to_usable: float
    median_hours_to_first_job: float | None = Field(
        description="over those with a first job; None: none has one yet"
    )
    with_first_job: int


def median_per_month(clocks: Iterable[OrderTurnaround]) -> list[MonthlyTurnaround]:
    """Median hours to usable and to first job per month of the platform's decision, in
    time order."""
    by_month: dict[str, list[OrderTurnaround]] = defaultdict(list)
    for c in clocks:
        by_month[f"{c.decided_at:%Y-%m}"].append(c)
    out: list[MonthlyTurnaround] = []
    for month in sorted(by_month):
        group = by_month[month]
        first = [c.hours_to_first_job for c in group if c.hours_to_first_job is not None]
        out.append(
            MonthlyTurnaround(
                month=month,
                allocations=len(group),
                median_hours_to_usable=statistics.median(c.hours_to_usable for c in group),
                median_hours_to_first_job=statistics.median(first) if first else None,
                with_first_job=len(first),
            )
        )
    return out


class Allocation(BaseModel):
    """An allocation and its budget now. GPU-hours are normalised (charged at each GPU type's
    factor) unless named raw; consumed counts finished and running jobs' used time,
    committed the rest of running jobs' time limits."""

    id: int
    project: str
    track: str
    proposal_id: int | None
    awarded_gpu_hours: float = Field(description="normalised GPU-h awarded")
    awarded_raw: dict[str, float] = Field(description="raw GPU-h per GPU type as awarded")
    consumed_gpu_hours: float
    committed_gpu_hours: float
    remaining_gpu_hours: float
    consumed_raw_gpu_hours: float = Field(description="GPU-h used, not normalised")
    used_percent: float
    sites: list[str]
    preemptible: bool
    tier: int
    starts_at: datetime
    ends_at: datetime
    active: bool
    final_report_due: datetime
    final_report_filed: bool
    source: AllocationSource | None = Field(default=None, description="where it came from")
    turnaround: OrderTurnaround | None = Field(
        default=None, description="for an allocation ordered on the federation platform"
    )


class Charge(BaseModel):
    """One line of an allocation's ledger: what a job's run cost."""

    job_id: int
    gpus: int
    gpu_type: str | None
    started_at: datetime
    ended_at: datetime
    raw_gpu_hours: float
    factor: float
    gpu_hours: float
