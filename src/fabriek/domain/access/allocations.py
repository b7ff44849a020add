"""Allocations: the shapes the API and the services exchange for budgets of GPU-hours."""

from __future__ import annotations

from datetime import datetime

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
