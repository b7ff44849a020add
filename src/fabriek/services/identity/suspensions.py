"""Suspending a person, a project or an allocation, and lifting it.

A suspension stops what would start, never what runs: a suspended person or project
submits no new job and logs in to no login node (the sites ask at every login); a
suspended allocation is charged no new job, and the site agents set its project's Slurm
limit so that jobs typed with `sbatch` do not start either. Only admins suspend; every
suspension and its lifting is on the audit trail with the reason.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.errors import Forbidden, InvalidInput, NotFound
from fabriek.domain.inputs import is_id
from fabriek.domain.roles import Principal
from fabriek.services.audit import record_admin
from fabriek.services.identity.permissions import require_admin
from fabriek.store.tables import AllocationRow, ProjectRow, UserRow

Suspendable = Literal["user", "project", "allocation"]
_ROWS: dict[Suspendable, type[UserRow] | type[ProjectRow] | type[AllocationRow]] = {
    "user": UserRow,
    "project": ProjectRow,
    "allocation": AllocationRow,
}


def _row(session: Session, kind: Suspendable, ref: str) -> UserRow | ProjectRow | AllocationRow:
    row: UserRow | ProjectRow | AllocationRow | None
    if is_id(ref):
        row = session.get(_ROWS[kind], int(ref))  # type: ignore[assignment]
    elif kind == "user":
        row = session.scalars(select(UserRow).where(UserRow.username == ref)).first()
    elif kind == "project":
        row = session.scalars(select(ProjectRow).where(ProjectRow.name == ref)).first()
    else:
        row = None
    if row is None:
        raise NotFound(kind, ref)
    return row


def set_suspension(
    session: Session,
    who: Principal,
    kind: Suspendable,
    ref: str,
    reason: str | None,
    now: datetime,
) -> datetime | None:
    """Suspend (`reason` given) or lift the suspension (`reason` None) of a person, a
    project or an allocation; returns since when it is suspended (None: not). Commits."""
    require_admin(who, f"suspend a {kind}")
    row = _row(session, kind, ref)
    if reason is not None:
        reason = reason.strip()
        if not reason:
            raise InvalidInput.on("reason", "say why, in words the people it stops will read")
        if kind == "user" and row.id == who.user_id:
            raise Forbidden("you cannot suspend yourself")
        if row.suspended_at is None:
            row.suspended_at = now
        row.suspended_reason = reason
    else:
        row.suspended_at = None
        row.suspended_reason = None
    project_id = row.id if kind == "project" else getattr(row, "project_id", None)
    record_admin(
        session, who, now, f"{kind}-{'suspend' if reason else 'resume'}",
        target=f"{kind}:{ref}", project_id=project_id, reason=reason,
    )  # fmt: skip
    since = row.suspended_at
    session.commit()
    return since
