"""Deleting a dataset or one version by crypto-shredding: the rows holding the wrapped data
keys go first (no copy of the ciphertext can be decrypted after that), then the ciphertext."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from fabriek.domain.audit import AuditAction
from fabriek.domain.errors import NotFound
from fabriek.domain.roles import Principal
from fabriek.services.audit import record_as
from fabriek.services.datasets.permissions import find_dataset, require_manager
from fabriek.services.datasets.vault import Vault
from fabriek.store.tables import DatasetGrantRow, DatasetRow, DatasetVersionRow


def delete_dataset(
    session: Session, vault: Vault, who: Principal, now: datetime, project: str, name: str
) -> None:
    """Delete a dataset with every version: the rows holding their wrapped data keys go in
    one transaction (from then on no copy of the ciphertext can be decrypted: the keys were
    nowhere else), then the ciphertext itself."""
    found = find_dataset(session, who, project, name)
    require_manager(who, found, f"delete {found.project.name}/{found.dataset.name}")
    objects = list(
        session.scalars(
            select(DatasetVersionRow.object_name).where(
                DatasetVersionRow.dataset_id == found.dataset.id
            )
        )
    )
    session.execute(
        delete(DatasetVersionRow).where(DatasetVersionRow.dataset_id == found.dataset.id)
    )
    session.execute(delete(DatasetGrantRow).where(DatasetGrantRow.dataset_id == found.dataset.id))
    session.execute(delete(DatasetRow).where(DatasetRow.id == found.dataset.id))
    record_as(
        session, who, AuditAction.DATASET_DELETE, now, project_id=found.project.id,
        dataset=found.dataset.name, target="all versions",
        detail={"project": found.project.name, "versions": len(objects)},
    )  # fmt: skip
    session.commit()
    for object_name in objects:
        vault.objects.remove(object_name)


def delete_version(
    session: Session,
    vault: Vault,
    who: Principal,
    now: datetime,
    project: str,
    name: str,
    number: int,
) -> None:
    """Delete one version (its data key, then its ciphertext); the dataset stays."""
    found = find_dataset(session, who, project, name)
    require_manager(who, found, f"delete versions of {found.project.name}/{found.dataset.name}")
    row = session.scalars(
        select(DatasetVersionRow).where(
            DatasetVersionRow.dataset_id == found.dataset.id, DatasetVersionRow.number == number
        )
    ).first()
    if row is None:
        raise NotFound("version", f"{number} of {found.project.name}/{found.dataset.name}")
    object_name = row.object_name
    session.delete(row)
    record_as(
        session, who, AuditAction.DATASET_DELETE, now, project_id=found.project.id,
        dataset=found.dataset.name, target=f"version {number}",
        detail={"project": found.project.name, "version": number},
    )  # fmt: skip
    session.commit()
    vault.objects.remove(object_name)
