"""The API's views of datasets and their versions, read from the store."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.datasets import (
    Access,
    Classification,
    Dataset,
    DatasetVersion,
    LegalBasis,
    Residency,
    SpecialCategoryCondition,
)
from fabriek.services.datasets.permissions import Found
from fabriek.store.tables import (
    DatasetGrantRow,
    DatasetRow,
    DatasetVersionRow,
    OrganisationRow,
    ProjectRow,
    UserRow,
)


def usernames(session: Session, ids: Collection[int]) -> dict[int, str]:
    """The usernames of the given users."""
    if not ids:
        return {}
    rows = session.execute(select(UserRow.id, UserRow.username).where(UserRow.id.in_(list(ids))))
    return {i: n for i, n in rows}


def version_view(row: DatasetVersionRow, users: dict[int, str]) -> DatasetVersion:
    """The API's view of one version."""
    return DatasetVersion(
        number=row.number,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        key_version=row.key_version,
        created_by=users.get(row.created_by, "?"),
        created_at=row.created_at,
    )


def dataset_view(
    row: DatasetRow,
    project: ProjectRow,
    organisation: str,
    access: Access,
    users: dict[int, str],
    versions: list[DatasetVersionRow],
    grants: list[str],
    with_versions: bool = True,
) -> Dataset:
    """The API's view; `versions` newest first (listings show only the latest's figures)."""
    latest = versions[0] if versions else None
    return Dataset(
        id=row.id,
        project=project.name,
        organisation=organisation,
        name=row.name,
        description=row.description,
        classification=Classification(row.classification),
        residency=Residency(row.residency),
        legal_basis=LegalBasis(row.legal_basis) if row.legal_basis else None,
        special_category_condition=(
            SpecialCategoryCondition(row.special_category_condition)
            if row.special_category_condition
            else None
        ),
        purpose=row.purpose,
        licence=row.licence,
        provenance=row.provenance,
        retention_until=row.retention_until,
        access=access,
        created_by=users.get(row.created_by, "?"),
        created_at=row.created_at,
        latest_version=latest.number if latest else None,
        size_bytes=latest.size_bytes if latest else None,
        sha256=latest.sha256 if latest else None,
        versions=[version_view(v, users) for v in versions] if with_versions else [],
        grants=grants,
    )


def versions_of(session: Session, dataset_ids: list[int]) -> dict[int, list[DatasetVersionRow]]:
    """The versions of each dataset, newest first."""
    out: dict[int, list[DatasetVersionRow]] = {i: [] for i in dataset_ids}
    if dataset_ids:
        for v in session.scalars(
            select(DatasetVersionRow)
            .where(DatasetVersionRow.dataset_id.in_(dataset_ids))
            .order_by(DatasetVersionRow.number.desc())
        ):
            out[v.dataset_id].append(v)
    return out


def grants_of(session: Session, dataset_id: int) -> list[str]:
    """The names of the projects granted the dataset."""
    return list(
        session.scalars(
            select(ProjectRow.name)
            .join(DatasetGrantRow, DatasetGrantRow.project_id == ProjectRow.id)
            .where(DatasetGrantRow.dataset_id == dataset_id)
            .order_by(ProjectRow.name)
        )
    )


def organisation_names(session: Session, ids: Collection[int]) -> dict[int, str]:
    """The names of the given organisations."""
    if not ids:
        return {}
    rows = session.execute(
        select(OrganisationRow.id, OrganisationRow.name).where(OrganisationRow.id.in_(list(ids)))
    )
    return {i: n for i, n in rows}


def show_dataset(session: Session, found: Found) -> Dataset:
    """One dataset as the caller sees it: every version and, for its owners, its grants."""
    versions = versions_of(session, [found.dataset.id])[found.dataset.id]
    users = usernames(session, {found.dataset.created_by, *(v.created_by for v in versions)})
    orgs = organisation_names(session, [found.project.organisation_id])
    # Who else may read is the owner's business, not another grantee's.
    grants = [] if found.access is Access.GRANTED else grants_of(session, found.dataset.id)
    return dataset_view(
        found.dataset,
        found.project,
        orgs.get(found.project.organisation_id, "?"),
        found.access,
        users,
        versions,
        grants,
    )
