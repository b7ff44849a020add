"""Allocations: GPU-hour budgets per project, with what each has consumed, committed and left."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from fabriek.api.context import Caller, Ctx, Db
from fabriek.api.routers import API_PREFIX
from fabriek.api.schemas import PageOut, paging
from fabriek.domain.access.allocations import Allocation, AllocationDraft, Charge
from fabriek.services.access import allocations
from fabriek.services.paging import PageRequest

router = APIRouter(prefix=f"{API_PREFIX}/allocations", tags=["allocations"])


@router.get("", response_model=PageOut[Allocation])
def list_allocations(
    db: Db,
    who: Caller,
    ctx: Ctx,
    page: Annotated[PageRequest, Depends(paging)],
    project: Annotated[str | None, Query(description="project name or id")] = None,
    active: Annotated[bool | None, Query(description="only those running now (or not)")] = None,
) -> PageOut[Allocation]:
    """The allocations of the caller's projects (all, for the access team), newest first,
    each with its budget now in normalised GPU-hours and raw GPU-hours used."""
    return PageOut.of(
        allocations.list_allocations(db, who, ctx.clock(), ctx.access, page, project, active)
    )


@router.post("", response_model=Allocation, status_code=status.HTTP_201_CREATED)
def create_allocation(body: AllocationDraft, db: Db, who: Caller, ctx: Ctx) -> Allocation:
    """Grant an allocation directly (access team, admins); awards from proposals make their own."""
    return allocations.create_allocation(db, who, ctx.clock(), ctx.access, body)


@router.get("/{allocation_id}", response_model=Allocation)
def get_allocation(allocation_id: int, db: Db, who: Caller, ctx: Ctx) -> Allocation:
    return allocations.get_allocation(db, who, ctx.clock(), ctx.access, allocation_id)


@router.get("/{allocation_id}/charges", response_model=list[Charge])
def list_charges(allocation_id: int, db: Db, who: Caller) -> list[Charge]:
    """The ledger: every job run charged to the allocation, oldest first."""
    return allocations.list_charges(db, who, allocation_id)
