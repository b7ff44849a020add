"""Whether a project may still be served: its current allocations' GPU-hours, which its
endpoints' replicas (jobs of the project) draw from like any job."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.access.tracks import AccessConfig
from fabriek.services.access.allocations import budgets
from fabriek.store.tables import AllocationRow


def allocation_spent(
    session: Session, project_id: int, now: datetime, access: AccessConfig
) -> str | None:
    """Why the project's endpoints take no new request (every current allocation of the
    project has consumed what it was awarded), or None while one has GPU-hours left or the
    project has no current allocation to judge by."""
    current = list(
        session.scalars(
            select(AllocationRow.id).where(
                AllocationRow.project_id == project_id,
                AllocationRow.starts_at <= now,
                AllocationRow.ends_at > now,
            )
        )
    )
    if not current:
        return None
    found = budgets(session, now, access, current)
    if any(b.consumed.value < b.awarded.value for b in found.values()):
        return None
    used = sum(b.consumed.value for b in found.values())
    awarded = sum(b.awarded.value for b in found.values())
    return (
        f"the project's allocation is spent ({used:,.1f} of {awarded:,.1f} GPU-hours): "
        "new requests are refused until it is topped up; running streams finish"
    )
