"""Grants: another project's members may read a dataset. Across organisations only with the
data owner's consent: the owning project's principal investigator, saying so."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.audit import AuditAction
from fabriek.domain.datasets import DatasetGrant, GrantDraft
from fabriek.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from fabriek.domain.roles import Principal, Role
from fabriek.services.audit import record_as
from fabriek.services.datasets.permissions import find_dataset, project_by_ref, require_manager
from fabriek.services.datasets.views import organisation_names
from fabriek.services.transactions import commit
from fabriek.store.tables import DatasetGrantRow, ProjectRow


def grant(
    session: Session, who: Principal, now: datetime, project: str, name: str, draft: GrantDraft
) -> DatasetGrant:
    """Let another project's members read the dataset. Across organisations only with the
    data owner's consent: the owning project's principal investigator, saying so."""
    found = find_dataset(session, who, project, name)
    require_manager(who, found, f"grant access to {found.project.name}/{found.dataset.name}")
    target = session.scalars(select(ProjectRow).where(project_by_ref(draft.project))).first()
    if target is None:
        raise InvalidInput.on("project", f"no project named {draft.project!r}")
    if target.id == found.project.id:
        raise InvalidInput.on("project", f"{target.name} owns the dataset already")
    cross = target.organisation_id != found.project.organisation_id
    orgs = organisation_names(session, {target.organisation_id, found.project.organisation_id})
    if cross:
        theirs, ours = (
            orgs.get(target.organisation_id, "?"),
            orgs.get(found.project.organisation_id, "?"),
        )
        if found.role != Role.PRINCIPAL_INVESTIGATOR.value:
            raise Forbidden(
                f"{target.name} belongs to {theirs}, not {ours}: a grant across organisations "
                f"needs the data owner's consent, which only the principal investigator of "
                f"{found.project.name} can give"
            )
        if not draft.cross_organisation:
            raise Forbidden(
                f"{target.name} belongs to {theirs}, not {ours}: to consent to sharing the data "
                "outside your organisation, grant again with cross_organisation=true "
                "(`fabriek data grant ... --cross-org`)"
            )
    if session.get(DatasetGrantRow, (found.dataset.id, target.id)) is not None:
        raise Conflict(
            f"{target.name} already holds a grant to {found.project.name}/{found.dataset.name}"
        )
    session.add(
        DatasetGrantRow(
            dataset_id=found.dataset.id,
            project_id=target.id,
            cross_organisation=cross,
            granted_by=who.user_id,
            created_at=now,
        )
    )
    record_as(
        session, who, AuditAction.GRANT, now, project_id=found.project.id,
        dataset=found.dataset.name, target=target.name,
        detail={"project": found.project.name, "grantee": target.name, "cross_organisation": cross},
    )  # fmt: skip
    commit(
        session, f"{target.name} already holds a grant to {found.project.name}/{found.dataset.name}"
    )
    return DatasetGrant(
        dataset=found.dataset.name,
        owner=found.project.name,
        project=target.name,
        organisation=orgs.get(target.organisation_id, "?"),
        cross_organisation=cross,
        granted_by=who.username,
        created_at=now,
    )


def revoke(
    session: Session, who: Principal, now: datetime, project: str, name: str, grantee: str
) -> None:
    """Withdraw a project's grant: its members no longer see the dataset."""
    found = find_dataset(session, who, project, name)
    require_manager(who, found, f"revoke access to {found.project.name}/{found.dataset.name}")
    target = session.scalars(select(ProjectRow).where(project_by_ref(grantee))).first()
    row = session.get(DatasetGrantRow, (found.dataset.id, target.id)) if target else None
    if row is None or target is None:
        raise NotFound("grant", f"of {found.project.name}/{found.dataset.name} to {grantee}")
    session.delete(row)
    record_as(
        session, who, AuditAction.REVOKE, now, project_id=found.project.id,
        dataset=found.dataset.name, target=target.name,
        detail={"project": found.project.name, "grantee": target.name},
    )  # fmt: skip
    session.commit()
