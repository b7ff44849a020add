"""Whether a project may still be served: not suspended, and its current allocations'
GPU-hours, which its endpoints' replicas (jobs of the project) draw from like any job.

A suspension stops what would start, never what runs (services/identity/suspensions.py):
for an endpoint, each request is what would start, so a suspended project's endpoints
refuse new requests while its replicas, and streams under way, run on."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.access.tracks import AccessConfig
from fabriek.domain.gateway import ProjectRefusal
from fabriek.services.access.allocations import budgets
from fabriek.store.tables import AllocationRow, ProjectRow


def project_refusal(
    session: Session, project_id: int, now: datetime, access: AccessConfig
) -> ProjectRefusal | None:
    """Why the project's endpoints take no new request (None: they do): the project is
    suspended (403), every current allocation is suspended (403), or all are spent (402)."""
    project = session.get(ProjectRow, project_id)
    if project is not None and project.suspended_at is not None:
        why = project.suspended_reason or "by the factory"
        return ProjectRefusal(
            403, "permission_error", "project_suspended",
            f"project {project.name} is suspended ({why}): its endpoints take no new "
            "requests until the suspension is lifted; running streams finish",
        )  # fmt: skip
    current = session.execute(
        select(AllocationRow.id, AllocationRow.suspended_at).where(
            AllocationRow.project_id == project_id,
            AllocationRow.starts_at <= now,
            AllocationRow.ends_at > now,
        )
    ).all()
    if current and all(suspended is not None for _, suspended in current):
        return ProjectRefusal(
            403, "permission_error", "allocation_suspended",
            "the project's allocation is suspended: its endpoints take no new requests "
            "until the suspension is lifted; running streams finish",
        )  # fmt: skip
    spent = allocation_spent(session, project_id, now, access)
    if spent is not None:
        return ProjectRefusal(402, "insufficient_quota", "allocation_spent", spent)
    return None


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
