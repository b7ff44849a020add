"""Organisation keys: each organisation's key versions, wrapped by the master key, wrap the
data keys of its datasets' versions. Made on the first upload, rotated on request (every
data key re-wrapped, the old material destroyed), listed as history, never as material."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from fabriek.domain.audit import AuditAction
from fabriek.domain.datasets import KeyRotation, OrganisationKey
from fabriek.domain.errors import Forbidden, NotFound
from fabriek.domain.roles import Principal, Role
from fabriek.services.audit import record_as
from fabriek.services.datasets.vault import Vault
from fabriek.services.transactions import commit
from fabriek.store.db import StoreError
from fabriek.store.envelope import (
    Secret,
    Undecryptable,
    data_key_context,
    key_id,
    new_key,
    organisation_key_context,
    unwrap,
    wrap,
)
from fabriek.store.tables import (
    DatasetVersionRow,
    MembershipRow,
    OrganisationKeyRow,
    OrganisationRow,
    ProjectRow,
)


def unwrap_org_key(session: Session, vault: Vault, organisation_id: int, version: int) -> Secret:
    """The material of an organisation's key version, unwrapped by the master key; a
    StoreError when it is gone or does not unwrap (the data it guards cannot be read)."""
    row = session.get(OrganisationKeyRow, (organisation_id, version))
    if row is None or row.wrapped_key is None:
        raise StoreError(
            f"organisation {organisation_id}'s key version {version} is gone; "
            "the data it guarded cannot be read"
        )
    try:
        return unwrap(
            vault.master(session),
            row.wrapped_key,
            organisation_key_context(organisation_id, version),
        )
    except Undecryptable:
        raise StoreError(
            f"organisation {organisation_id}'s key version {version} does not unwrap with "
            "the master key: the key file or the store was altered"
        ) from None


def current_key_row(session: Session, organisation_id: int) -> OrganisationKeyRow | None:
    """The organisation's current (not retired) key version, if it has one."""
    return session.scalars(
        select(OrganisationKeyRow)
        .where(
            OrganisationKeyRow.organisation_id == organisation_id,
            OrganisationKeyRow.retired_at.is_(None),
        )
        .order_by(OrganisationKeyRow.version.desc())
        .limit(1)
    ).first()


def add_org_key(
    session: Session, vault: Vault, organisation_id: int, version: int, now: datetime
) -> Secret:
    """Add a new key version for the organisation, wrapped by the master key; the caller
    commits."""
    key = new_key()
    master = vault.master(session)
    session.add(
        OrganisationKeyRow(
            organisation_id=organisation_id,
            version=version,
            wrapped_key=wrap(master, key, organisation_key_context(organisation_id, version)),
            master_key_id=key_id(master),
            created_at=now,
        )
    )
    return key


def ensure_org_key(
    sessions: sessionmaker[Session], vault: Vault, organisation_id: int, now: datetime
) -> None:
    """Make the organisation's first key if it has none (two uploads may race to: one wins)."""
    with sessions() as session:
        if current_key_row(session, organisation_id) is not None:
            return
        add_org_key(session, vault, organisation_id, 1, now)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()


def lock_org_keys(session: Session, organisation_id: int) -> None:
    """Serialise against rotations and other uploads of the organisation, for the rest of
    the transaction: a no-op UPDATE takes the rows' locks on PostgreSQL and SQLite's
    write lock, before anything is read."""
    session.execute(
        update(OrganisationKeyRow)
        .where(OrganisationKeyRow.organisation_id == organisation_id)
        .values(master_key_id=OrganisationKeyRow.master_key_id)
    )


def _may_manage_keys(session: Session, who: Principal, organisation_id: int) -> bool:
    if who.is_admin:
        return True
    led = session.scalar(
        select(func.count())
        .select_from(MembershipRow)
        .join(ProjectRow, ProjectRow.id == MembershipRow.project_id)
        .where(
            MembershipRow.user_id == who.user_id,
            MembershipRow.role == Role.PRINCIPAL_INVESTIGATOR.value,
            ProjectRow.organisation_id == organisation_id,
        )
    )
    return bool(led)


def list_keys(session: Session, who: Principal) -> list[OrganisationKey]:
    """The key versions (history, never material) of the organisations the caller may
    rotate: all for admins, their projects' organisations for principal investigators."""
    query = select(OrganisationKeyRow, OrganisationRow.name).join(
        OrganisationRow, OrganisationRow.id == OrganisationKeyRow.organisation_id
    )
    if not who.is_admin:
        led = (
            select(ProjectRow.organisation_id)
            .join(MembershipRow, MembershipRow.project_id == ProjectRow.id)
            .where(
                MembershipRow.user_id == who.user_id,
                MembershipRow.role == Role.PRINCIPAL_INVESTIGATOR.value,
            )
        )
        query = query.where(OrganisationKeyRow.organisation_id.in_(led))
    rows = session.execute(
        query.order_by(OrganisationKeyRow.organisation_id, OrganisationKeyRow.version)
    ).all()
    counts = {
        (o, v): n
        for o, v, n in session.execute(
            select(
                DatasetVersionRow.organisation_id, DatasetVersionRow.key_version, func.count()
            ).group_by(DatasetVersionRow.organisation_id, DatasetVersionRow.key_version)
        )
    }
    return [
        OrganisationKey(
            organisation_id=k.organisation_id,
            organisation=org,
            version=k.version,
            current=k.retired_at is None,
            data_keys=counts.get((k.organisation_id, k.version), 0),
            created_at=k.created_at,
            retired_at=k.retired_at,
        )
        for k, org in rows
    ]


def rotate_key(
    session: Session, vault: Vault, who: Principal, now: datetime, organisation_id: int
) -> KeyRotation:
    """Give the organisation a new key version and re-wrap every data key it guards under
    it, in one transaction; the old version's material is then destroyed. The data itself
    is not touched (its data keys do not change)."""
    org = session.get(OrganisationRow, organisation_id)
    if org is None:
        raise NotFound("organisation", organisation_id)
    if not _may_manage_keys(session, who, organisation_id):
        raise Forbidden(
            f"only an admin or a principal investigator of a project of {org.name} may rotate "
            "its key"
        )
    if current_key_row(session, organisation_id) is None:
        # A first key, committed on its own (an upload may be making it too: one wins), so
        # that the lock below has a row to hold against the organisation's uploads.
        add_org_key(session, vault, organisation_id, 1, now)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
    lock_org_keys(session, organisation_id)
    current = current_key_row(session, organisation_id)
    old_version = current.version if current else None
    latest = session.scalar(
        select(func.max(OrganisationKeyRow.version)).where(
            OrganisationKeyRow.organisation_id == organisation_id
        )
    )
    version = (latest or 0) + 1
    new = add_org_key(session, vault, organisation_id, version, now)
    session.flush()
    old_keys: dict[int, Secret] = {}
    versions = list(
        session.scalars(
            select(DatasetVersionRow).where(DatasetVersionRow.organisation_id == organisation_id)
        )
    )
    for row in versions:
        if row.key_version not in old_keys:
            old_keys[row.key_version] = unwrap_org_key(
                session, vault, organisation_id, row.key_version
            )
        context = data_key_context(row.object_name)
        data_key = unwrap(old_keys[row.key_version], row.wrapped_data_key, context)
        row.wrapped_data_key = wrap(new, data_key, context)
        row.key_version = version
    session.flush()
    # Nothing is wrapped by the older versions any more: destroy their material.
    for old in session.scalars(
        select(OrganisationKeyRow).where(
            OrganisationKeyRow.organisation_id == organisation_id,
            OrganisationKeyRow.version < version,
            OrganisationKeyRow.wrapped_key.is_not(None),
        )
    ):
        old.wrapped_key = None
        old.retired_at = old.retired_at or now
    record_as(
        session, who, AuditAction.KEY_ROTATE, now, target=f"organisation {org.name}",
        detail={"organisation_id": organisation_id, "from_version": old_version,
                "to_version": version, "data_keys_rewrapped": len(versions)},
    )  # fmt: skip
    commit(session, f"the key of {org.name} was rotated at the same time; try again")
    return KeyRotation(
        organisation_id=organisation_id,
        organisation=org.name,
        from_version=old_version,
        to_version=version,
        data_keys_rewrapped=len(versions),
    )
