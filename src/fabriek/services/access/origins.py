"""Where each allocation came from (a national call's award, a EuroHPC access mode's order
on the federation platform, or the access team's grant) and, for an ordered one, its
turnaround clock from the platform's decision."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fabriek.domain.access.allocations import (
    AllocationSource,
    MonthlyTurnaround,
    OrderTurnaround,
    SourceKind,
    median_per_month,
    order_turnaround,
)
from fabriek.domain.federation import eurohpc_mode
from fabriek.store.tables import (
    AllocationRow,
    CallRow,
    FederationResourceRow,
    JobRow,
    ProposalRow,
)

OPERATOR = AllocationSource(kind=SourceKind.OPERATOR, name="operator")


@dataclass(frozen=True)
class Origin:
    """An allocation's source, and its turnaround clock where the platform ordered it."""

    source: AllocationSource
    turnaround: OrderTurnaround | None = None


def _first_jobs(session: Session, ids: Collection[int]) -> dict[int, datetime]:
    """When each allocation's first job started (those with one)."""
    return {
        allocation_id: started
        for allocation_id, started in session.execute(
            select(JobRow.allocation_id, func.min(JobRow.started_at))
            .where(JobRow.allocation_id.in_(ids), JobRow.started_at.is_not(None))
            .group_by(JobRow.allocation_id)
        )
        if allocation_id is not None and started is not None
    }


def origins(session: Session, allocations: Collection[AllocationRow]) -> dict[int, Origin]:
    """The origin of each of these allocations, by id (three queries, whatever their number)."""
    ids = [a.id for a in allocations]
    if not ids:
        return {}
    calls = {
        proposal_id: (code, title)
        for proposal_id, code, title in session.execute(
            select(ProposalRow.id, CallRow.code, CallRow.title)
            .join(CallRow, CallRow.id == ProposalRow.call_id)
            .where(ProposalRow.id.in_({a.proposal_id for a in allocations if a.proposal_id}))
        )
    }
    ordered = {
        r.allocation_id: r
        for r in session.scalars(
            select(FederationResourceRow).where(FederationResourceRow.allocation_id.in_(ids))
        )
    }
    first = _first_jobs(session, list(ordered)) if ordered else {}
    out: dict[int, Origin] = {}
    for a in allocations:
        resource = ordered.get(a.id)
        if resource is not None:
            source = AllocationSource(
                kind=SourceKind.EUROHPC,
                name=eurohpc_mode(resource.access_mode or a.track),
                platform_resource=resource.resource_uuid,
            )
            clock = None
            if resource.decided_at is not None:
                clock = order_turnaround(
                    resource.decided_at, a.created_at, a.starts_at, first.get(a.id)
                )
            out[a.id] = Origin(source, clock)
        elif a.proposal_id is not None and a.proposal_id in calls:
            code, title = calls[a.proposal_id]
            out[a.id] = Origin(
                AllocationSource(kind=SourceKind.NATIONAL_CALL, name=f"{code}: {title}", call=code)
            )
        else:
            out[a.id] = Origin(OPERATOR)
    return out


def ordered_turnaround(session: Session) -> list[MonthlyTurnaround]:
    """The median turnaround per month of the platform's decision, over every allocation
    ordered on the federation platform whose decision time is known."""
    rows = list(
        session.scalars(
            select(AllocationRow)
            .join(FederationResourceRow, FederationResourceRow.allocation_id == AllocationRow.id)
            .where(FederationResourceRow.decided_at.is_not(None))
        )
    )
    found = origins(session, rows)
    return median_per_month(c for o in found.values() if (c := o.turnaround) is not None)
