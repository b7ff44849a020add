"""Usage: GPU-hours, energy, carbon, water and reused heat, rolled up."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from fabriek.api.context import Caller, Db
from fabriek.api.routers import API_PREFIX
from fabriek.domain.usage import GroupBy, Step, UsageLine
from fabriek.services.energy import usage as usage_service

router = APIRouter(prefix=f"{API_PREFIX}/usage", tags=["usage"])


@router.get("", response_model=list[UsageLine])
def usage(
    db: Db,
    who: Caller,
    by: Annotated[GroupBy, Query(description="the level to sum over")] = GroupBy.PROJECT,
    step: Annotated[Step, Query(description="cut time per hour, month or year")] = Step.TOTAL,
    month: Annotated[str | None, Query(description="e.g. 2025-03")] = None,
    year: Annotated[str | None, Query(description="e.g. 2025; default: this year")] = None,
) -> list[UsageLine]:
    """What the caller may see (their projects; their hub's for hub staff; everything for
    admins and the access team), from the hourly energy records of finished job runs:
    GPU-hours, kWh IT and facility, kg CO2e (location-based), L water, kWh heat reused."""
    start, end = usage_service.period_bounds(month, year)
    return usage_service.usage(db, who, by, step, start, end)
