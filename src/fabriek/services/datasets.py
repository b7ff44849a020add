"""Datasets: register, upload versions (streamed and encrypted on the way in), list, show,
download (decrypted on the way out), grant, revoke, delete (crypto-shredding) and the
rotation of organisation keys.

Who may do what:
- members of the owning project read, register and upload;
- members of a granted project read;
- the owning project's principal investigator (or an admin) grants, revokes and deletes;
  a grant to a project of another organisation needs the owner's consent: only that
  principal investigator may give it, and only by saying so (`cross_organisation`);
- admins see every dataset's terms but read its data only through a grant to their project;
- to anyone else a dataset does not exist (404).

An upload never holds a database connection while bytes arrive: it checks and plans in
one short transaction, streams into a locked file in `incoming/`, then commits the row in
another short transaction (under the organisation's key lock, so a key rotation or a
concurrent upload cannot slip between reading the current key and using it).
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import AsyncIterable, Callable, Collection, Generator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio.to_thread
from sqlalchemy import Select, delete, false, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from fabriek.domain.audit import AuditAction
from fabriek.domain.datasets import (
    GIB,
    Access,
    Classification,
    Dataset,
    DatasetDraft,
    DatasetGrant,
    DatasetVersion,
    GrantDraft,
    KeyRotation,
    LegalBasis,
    OrganisationKey,
    Residency,
    SpecialCategoryCondition,
    name_problem,
    quota_refusal,
)
from fabriek.domain.errors import Conflict, Forbidden, InvalidInput, NotFound, TooLarge
from fabriek.domain.roles import Principal, Role
from fabriek.services.audit import record_as
from fabriek.services.paging import Page, PageRequest, count_all
from fabriek.services.projects import may_see_project
from fabriek.services.transactions import commit
from fabriek.settings import Settings
from fabriek.store.db import StoreError
from fabriek.store.envelope import (
    CHUNK_BYTES,
    MasterKeyProblem,
    Sealer,
    Secret,
    Undecryptable,
    create_master_key,
    data_key_context,
    key_id,
    new_key,
    open_sealed,
    organisation_key_context,
    read_master_key,
    unwrap,
    wrap,
)
from fabriek.store.objects import Incoming, ObjectStore, Swept, new_object_name
from fabriek.store.tables import (
    DatasetGrantRow,
    DatasetRow,
    DatasetVersionRow,
    MembershipRow,
    OrganisationKeyRow,
    OrganisationRow,
    ProjectRow,
    UserRow,
)

# --- the vault: storage and the master key ------------------------------------------------------


@dataclass
class Vault:
    """Where datasets' ciphertext lives, the master key guarding their keys, and the quota."""

    objects: ObjectStore
    master_key_file: Path
    quota_bytes: int
    chunk_bytes: int = CHUNK_BYTES
    _master: Secret | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Vault:
        return cls(
            objects=ObjectStore(settings.datasets_dir or settings.state_dir / "datasets"),
            master_key_file=settings.master_key_file or settings.state_dir / "master.key",
            quota_bytes=int(settings.dataset_quota_gib * GIB),
        )

    def master(self, session: Session) -> Secret:
        """The master key: read from its file once; made when there is none and the store
        holds no organisation key (a missing file with keys in the store is a lost key, and
        a new one would only hide that)."""
        with self._lock:
            if self._master is None:
                self._master = self._load(session)
            return self._master

    def _load(self, session: Session) -> Secret:
        path = self.master_key_file
        try:
            key = read_master_key(path)
        except MasterKeyProblem as exc:
            raise StoreError(str(exc)) from None
        ids = set(session.scalars(select(OrganisationKeyRow.master_key_id).distinct()))
        if key is None:
            if ids:
                raise StoreError(
                    f"no master key file at {path}, but the store holds organisation keys "
                    f"wrapped by master key {', '.join(sorted(ids))}: restore that file "
                    "(FABRIEK_MASTER_KEY_FILE); without it no dataset can be read"
                )
            try:
                key = create_master_key(path)
            except (OSError, MasterKeyProblem) as exc:
                raise StoreError(f"cannot create the master key file {path}: {exc}") from None
        if ids - {key_id(key)}:
            raise StoreError(
                f"the master key in {path} (id {key_id(key)}) is not the one that wrapped the "
                f"stored organisation keys (id {', '.join(sorted(ids))}): restore the right file"
            )
        return key


def sweep_storage(sessions: sessionmaker[Session], vault: Vault) -> Swept:
    """Remove what killed uploads left behind: files in `incoming/`, and objects no
    version row names (a crash between publishing and committing). Uploads in progress, in
    this process or another, hold a lock on their file and are left alone."""

    def known(names: Collection[str]) -> set[str]:
        found: set[str] = set()
        ordered = list(names)
        with sessions() as session:
            for start in range(0, len(ordered), 500):
                batch = ordered[start : start + 500]
                found.update(
                    session.scalars(
                        select(DatasetVersionRow.object_name).where(
                            DatasetVersionRow.object_name.in_(batch)
                        )
                    )
                )
        return found

    vault.objects.prepare()
    return vault.objects.sweep(known)


# --- organisation keys ---------------------------------------------------------------------------


def _unwrap_org_key(session: Session, vault: Vault, organisation_id: int, version: int) -> Secret:
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


def _current_key_row(session: Session, organisation_id: int) -> OrganisationKeyRow | None:
    return session.scalars(
        select(OrganisationKeyRow)
        .where(
            OrganisationKeyRow.organisation_id == organisation_id,
            OrganisationKeyRow.retired_at.is_(None),
        )
        .order_by(OrganisationKeyRow.version.desc())
        .limit(1)
    ).first()


def _add_org_key(
    session: Session, vault: Vault, organisation_id: int, version: int, now: datetime
) -> Secret:
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


def _ensure_org_key(
    sessions: sessionmaker[Session], vault: Vault, organisation_id: int, now: datetime
) -> None:
    """Make the organisation's first key if it has none (two uploads may race to: one wins)."""
    with sessions() as session:
        if _current_key_row(session, organisation_id) is not None:
            return
        _add_org_key(session, vault, organisation_id, 1, now)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()


def _lock_org_keys(session: Session, organisation_id: int) -> None:
    """Serialise against rotations and other uploads of the organisation, for the rest of
    the transaction: a no-op UPDATE takes the rows' locks on PostgreSQL and SQLite's
    write lock, before anything is read."""
    session.execute(
        update(OrganisationKeyRow)
        .where(OrganisationKeyRow.organisation_id == organisation_id)
        .values(master_key_id=OrganisationKeyRow.master_key_id)
    )


# --- who may do what ------------------------------------------------------------------------------


def _memberships(session: Session, who: Principal) -> dict[int, str]:
    """The caller's projects and roles, read now (not from a cache: access to data follows
    a membership change at once)."""
    rows = session.execute(
        select(MembershipRow.project_id, MembershipRow.role).where(
            MembershipRow.user_id == who.user_id
        )
    )
    return {p: r for p, r in rows}


def _project_by_ref(ref: str) -> Any:
    if "\x00" in ref:
        # No project is named so, and PostgreSQL refuses NUL in text: match nothing.
        return false()
    return ProjectRow.id == int(ref) if ref.isdigit() else ProjectRow.name == ref


@dataclass(frozen=True)
class _Found:
    dataset: DatasetRow
    project: ProjectRow
    access: Access
    role: str | None  # the caller's role in the owning project


def _find(session: Session, who: Principal, project: str, name: str) -> _Found:
    """A dataset the caller may see; NotFound for any other (existing or not)."""
    if name_problem(name) is not None:
        raise NotFound("dataset", f"{project}/{name!r}")
    found = session.execute(
        select(DatasetRow, ProjectRow)
        .join(ProjectRow, ProjectRow.id == DatasetRow.project_id)
        .where(_project_by_ref(project), DatasetRow.name == name)
    ).first()
    if found is None:
        raise NotFound("dataset", f"{project}/{name}")
    dataset, owner = found
    mine = _memberships(session, who)
    if owner.id in mine:
        return _Found(dataset, owner, Access.OWNER, mine[owner.id])
    granted = session.scalar(
        select(func.count()).where(
            DatasetGrantRow.dataset_id == dataset.id, DatasetGrantRow.project_id.in_(list(mine))
        )
    )
    if granted:
        return _Found(dataset, owner, Access.GRANTED, None)
    if who.is_admin:
        return _Found(dataset, owner, Access.ADMIN, None)
    raise NotFound("dataset", f"{project}/{name}")


def _require_reader(found: _Found) -> None:
    if found.access is Access.ADMIN:
        raise Forbidden(
            f"admins see the terms of {found.project.name}/{found.dataset.name} but read its "
            "data only through a grant to one of their projects"
        )


def _require_owner_member(found: _Found, action: str) -> None:
    if found.access is not Access.OWNER:
        raise Forbidden(f"only members of project {found.project.name} may {action}")


def _require_manager(who: Principal, found: _Found, action: str) -> None:
    if found.role == Role.PRINCIPAL_INVESTIGATOR.value or who.is_admin:
        return
    raise Forbidden(
        f"only the principal investigator of {found.project.name} or an admin may {action}"
    )


def _visible_query(session: Session, who: Principal) -> Select[DatasetRow, ProjectRow]:
    query = select(DatasetRow, ProjectRow).join(ProjectRow, ProjectRow.id == DatasetRow.project_id)
    if who.is_admin:
        return query
    mine = list(_memberships(session, who))
    granted = select(DatasetGrantRow.dataset_id).where(DatasetGrantRow.project_id.in_(mine))
    return query.where(or_(DatasetRow.project_id.in_(mine), DatasetRow.id.in_(granted)))


# --- views ---------------------------------------------------------------------------------------


def _usernames(session: Session, ids: Collection[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = session.execute(select(UserRow.id, UserRow.username).where(UserRow.id.in_(list(ids))))
    return {i: n for i, n in rows}


def _version_view(row: DatasetVersionRow, users: dict[int, str]) -> DatasetVersion:
    return DatasetVersion(
        number=row.number,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        key_version=row.key_version,
        created_by=users.get(row.created_by, "?"),
        created_at=row.created_at,
    )


def _dataset_view(
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
        versions=[_version_view(v, users) for v in versions] if with_versions else [],
        grants=grants,
    )


def _versions_of(session: Session, dataset_ids: list[int]) -> dict[int, list[DatasetVersionRow]]:
    out: dict[int, list[DatasetVersionRow]] = {i: [] for i in dataset_ids}
    if dataset_ids:
        for v in session.scalars(
            select(DatasetVersionRow)
            .where(DatasetVersionRow.dataset_id.in_(dataset_ids))
            .order_by(DatasetVersionRow.number.desc())
        ):
            out[v.dataset_id].append(v)
    return out


def _grants_of(session: Session, dataset_id: int) -> list[str]:
    return list(
        session.scalars(
            select(ProjectRow.name)
            .join(DatasetGrantRow, DatasetGrantRow.project_id == ProjectRow.id)
            .where(DatasetGrantRow.dataset_id == dataset_id)
            .order_by(ProjectRow.name)
        )
    )


def _organisation_names(session: Session, ids: Collection[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = session.execute(
        select(OrganisationRow.id, OrganisationRow.name).where(OrganisationRow.id.in_(list(ids)))
    )
    return {i: n for i, n in rows}


def _show(session: Session, found: _Found) -> Dataset:
    versions = _versions_of(session, [found.dataset.id])[found.dataset.id]
    users = _usernames(session, {found.dataset.created_by, *(v.created_by for v in versions)})
    orgs = _organisation_names(session, [found.project.organisation_id])
    # Who else may read is the owner's business, not another grantee's.
    grants = [] if found.access is Access.GRANTED else _grants_of(session, found.dataset.id)
    return _dataset_view(
        found.dataset,
        found.project,
        orgs.get(found.project.organisation_id, "?"),
        found.access,
        users,
        versions,
        grants,
    )


# --- use cases: terms ------------------------------------------------------------------------------


def register(session: Session, who: Principal, now: datetime, draft: DatasetDraft) -> Dataset:
    """Register a dataset of one of the caller's projects; its data comes as versions."""
    project = session.scalars(select(ProjectRow).where(_project_by_ref(draft.project))).first()
    mine = _memberships(session, who)
    # Those who may see the project (admins, its hub's staff) are told why they may not;
    # for anyone else it does not exist.
    if project is None or (
        project.id not in mine and not may_see_project(session, who, project.id)
    ):
        raise NotFound("project", draft.project)
    if project.id not in mine:
        raise Forbidden(f"only members of project {project.name} may register its datasets")
    if draft.retention_until is not None and draft.retention_until <= now.date():
        raise InvalidInput.on(
            "retention_until", f"{draft.retention_until} has passed; give a date after today"
        )
    row = DatasetRow(
        project_id=project.id,
        name=draft.name,
        description=draft.description,
        classification=draft.classification.value,
        residency=draft.residency.value,
        legal_basis=draft.legal_basis.value if draft.legal_basis else None,
        special_category_condition=(
            draft.special_category_condition.value if draft.special_category_condition else None
        ),
        purpose=draft.purpose,
        licence=draft.licence,
        provenance=draft.provenance,
        retention_until=draft.retention_until,
        created_by=who.user_id,
        created_at=now,
    )
    session.add(row)
    commit(
        session,
        f"project {project.name} already has a dataset named {draft.name!r}; "
        "push a new version to it instead",
    )
    found = _Found(row, project, Access.OWNER, mine[project.id])
    return _show(session, found)


def list_datasets(
    session: Session,
    who: Principal,
    page: PageRequest,
    project: str | None = None,
    name: str | None = None,
) -> Page[Dataset]:
    """The datasets the caller may see: their projects' and those granted to them (every
    one, for admins), by project and name, each with its latest version."""
    query = _visible_query(session, who)
    if project is not None:
        query = query.where(_project_by_ref(project))
    if name is not None:
        query = query.where(DatasetRow.name == name if name_problem(name) is None else false())
    total = count_all(session, query)
    rows = session.execute(
        query.order_by(ProjectRow.name, DatasetRow.name).limit(page.limit).offset(page.offset)
    ).all()
    ids = [d.id for d, _ in rows]
    versions_by_dataset = _versions_of(session, ids)
    mine = _memberships(session, who)
    users = _usernames(session, {d.created_by for d, _ in rows})
    orgs = _organisation_names(session, {p.organisation_id for _, p in rows})
    items = []
    for d, p in rows:
        access = (
            Access.OWNER
            if p.id in mine
            else Access.ADMIN
            if who.is_admin and not _granted_to(session, d.id, mine)
            else Access.GRANTED
        )
        organisation = orgs.get(p.organisation_id, "?")
        items.append(
            _dataset_view(
                d,
                p,
                organisation,
                access,
                users,
                versions_by_dataset[d.id],
                [],
                with_versions=False,
            )
        )
    return Page(items, total, page.limit, page.offset)


def _granted_to(session: Session, dataset_id: int, projects: Collection[int]) -> bool:
    return bool(
        session.scalar(
            select(func.count()).where(
                DatasetGrantRow.dataset_id == dataset_id,
                DatasetGrantRow.project_id.in_(list(projects)),
            )
        )
    )


def get_dataset(session: Session, who: Principal, project: str, name: str) -> Dataset:
    """One dataset with all its versions (newest first) and, for its owners, its grants."""
    return _show(session, _find(session, who, project, name))


# --- use cases: upload -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    dataset_id: int
    dataset: str
    project_id: int
    project: str
    organisation_id: int
    used_bytes: int


def _used_bytes(session: Session, project_id: int) -> int:
    return int(
        session.scalar(
            select(func.coalesce(func.sum(DatasetVersionRow.size_bytes), 0))
            .join(DatasetRow, DatasetRow.id == DatasetVersionRow.dataset_id)
            .where(DatasetRow.project_id == project_id)
        )
        or 0
    )


def _plan_upload(
    sessions: sessionmaker[Session],
    vault: Vault,
    who: Principal,
    now: datetime,
    project: str,
    name: str,
    declared_bytes: int | None,
) -> _Plan:
    with sessions() as session:
        found = _find(session, who, project, name)
        _require_owner_member(found, "upload versions of its datasets")
        used = _used_bytes(session, found.project.id)
        if declared_bytes is not None and (
            refusal := quota_refusal(found.project.name, used, declared_bytes, vault.quota_bytes)
        ):
            raise TooLarge(refusal)
        plan = _Plan(
            found.dataset.id,
            found.dataset.name,
            found.project.id,
            found.project.name,
            found.project.organisation_id,
            used,
        )
        vault.master(session)
    _ensure_org_key(sessions, vault, plan.organisation_id, now)
    return plan


def _seal_into(
    sealer: Sealer, digest: Any, incoming: Incoming, block: memoryview, last: bool
) -> None:
    """Hash and seal `block` (whole chunks, or the final part) and write the records."""
    size = sealer.chunk_bytes
    if last:
        digest.update(block)
        incoming.write(*sealer.seal(block, last=True))
        return
    for start in range(0, len(block), size):
        chunk = block[start : start + size]
        digest.update(chunk)
        incoming.write(*sealer.seal(chunk, last=False))


def _commit_version(
    sessions: sessionmaker[Session],
    vault: Vault,
    who: Principal,
    now: datetime,
    plan: _Plan,
    object_name: str,
    data_key: Secret,
    size: int,
    sha256: str,
) -> DatasetVersion:
    with sessions() as session:
        _lock_org_keys(session, plan.organisation_id)
        if session.get(DatasetRow, plan.dataset_id) is None:
            raise Conflict(f"dataset {plan.project}/{plan.dataset} was deleted during the upload")
        used = _used_bytes(session, plan.project_id)
        if refusal := quota_refusal(plan.project, used, size, vault.quota_bytes):
            raise TooLarge(refusal)
        current = _current_key_row(session, plan.organisation_id)
        if current is None:  # pragma: no cover - made before the upload began
            raise StoreError(f"organisation {plan.organisation_id} has no key")
        org_key = _unwrap_org_key(session, vault, plan.organisation_id, current.version)
        number = 1 + int(
            session.scalar(
                select(func.coalesce(func.max(DatasetVersionRow.number), 0)).where(
                    DatasetVersionRow.dataset_id == plan.dataset_id
                )
            )
            or 0
        )
        row = DatasetVersionRow(
            dataset_id=plan.dataset_id,
            number=number,
            size_bytes=size,
            sha256=sha256,
            object_name=object_name,
            wrapped_data_key=wrap(org_key, data_key, data_key_context(object_name)),
            organisation_id=plan.organisation_id,
            key_version=current.version,
            created_by=who.user_id,
            created_at=now,
        )
        session.add(row)
        record_as(
            session, who, AuditAction.UPLOAD, now, project_id=plan.project_id,
            dataset=plan.dataset, target=f"version {number}",
            detail={"project": plan.project, "version": number, "size_bytes": size,
                    "sha256": sha256},
        )  # fmt: skip
        commit(
            session,
            f"another version of {plan.project}/{plan.dataset} came in at the same time; push again",
        )
        return _version_view(row, {who.user_id: who.username})


async def upload_version(
    sessions: sessionmaker[Session],
    vault: Vault,
    who: Principal,
    clock: Callable[[], datetime],
    project: str,
    name: str,
    declared_sha256: str,
    declared_bytes: int | None,
    body: AsyncIterable[bytes],
) -> DatasetVersion:
    """Receive a new version of a dataset from `body`, encrypting it chunk by chunk into
    `incoming/` with a fresh data key while hashing the plaintext; then check the declared
    SHA-256, publish the object and commit its row. Whatever goes wrong (a mismatch, the
    quota, a cut-off body), nothing is left on disk or in the database."""
    plan = await anyio.to_thread.run_sync(
        _plan_upload, sessions, vault, who, clock(), project, name, declared_bytes
    )
    room = vault.quota_bytes - plan.used_bytes
    object_name = new_object_name()
    data_key = new_key()
    sealer = Sealer(data_key, object_name, vault.chunk_bytes)
    digest = hashlib.sha256()
    incoming = await anyio.to_thread.run_sync(vault.objects.receive, object_name)
    try:
        incoming.write(sealer.header)
        # The pieces as they arrive, joined once per chunk (the one copy the data gets).
        parts: list[bytes] = []
        held = 0
        size = 0
        async for piece in body:
            size += len(piece)
            if size > room:
                refusal = quota_refusal(
                    plan.project, plan.used_bytes, size, vault.quota_bytes, so_far=True
                )
                raise TooLarge(refusal or "over the quota")
            parts.append(piece)
            held += len(piece)
            if held > sealer.chunk_bytes:
                # Keep the tail: only the end of the body says which chunk is the last.
                joined = b"".join(parts)
                whole = (held - 1) // sealer.chunk_bytes * sealer.chunk_bytes
                block = memoryview(joined)[:whole]
                await anyio.to_thread.run_sync(_seal_into, sealer, digest, incoming, block, False)
                parts = [joined[whole:]]
                held = len(parts[0])
        tail = memoryview(b"".join(parts))
        await anyio.to_thread.run_sync(_seal_into, sealer, digest, incoming, tail, True)
        if declared_bytes is not None and size != declared_bytes:
            raise InvalidInput.on(
                "content-length",
                f"the upload was cut off: {size} of {declared_bytes} bytes arrived; "
                "nothing was kept, push again",
            )
        actual = digest.hexdigest()
        if actual != declared_sha256:
            raise InvalidInput.on(
                "x-content-sha256",
                f"the data that arrived has SHA-256 {actual}, not the declared "
                f"{declared_sha256}; nothing was kept: check the file and push again",
            )
        await anyio.to_thread.run_sync(incoming.publish)
        version = await anyio.to_thread.run_sync(
            _commit_version, sessions, vault, who, clock(), plan, object_name, data_key, size,
            actual,
        )  # fmt: skip
    except BaseException:
        incoming.discard()
        raise
    incoming.close()
    return version


# --- use cases: download ---------------------------------------------------------------------------


def open_plaintext(session: Session, vault: Vault, version: DatasetVersionRow) -> Iterator[bytes]:
    """The decrypted data of one version, chunk by chunk. Keys are unwrapped and the object
    opened before this returns (so a missing key or file is an error now, not mid-stream);
    an altered chunk raises Undecryptable while iterating."""
    org_key = _unwrap_org_key(session, vault, version.organisation_id, version.key_version)
    name = version.object_name
    try:
        data_key = unwrap(org_key, version.wrapped_data_key, data_key_context(name))
    except Undecryptable:
        raise StoreError(f"the data key of object {name} does not unwrap") from None
    try:
        source = vault.objects.open(name)
    except FileNotFoundError:
        raise StoreError(f"the ciphertext of object {name} is missing from the storage") from None

    def chunks() -> Generator[bytes]:
        with source:
            yield from open_sealed(data_key, name, source)

    opened = chunks()
    # The first chunk is checked before anything is sent: a damaged object is then an
    # error the caller can report, not a download that breaks off.
    try:
        first = next(opened)
    except Undecryptable:
        opened.close()
        raise StoreError(
            f"the stored data of object {name} fails its integrity check (altered or "
            "damaged); it cannot be served: restore the object from a backup"
        ) from None
    return itertools.chain([first], opened)


@dataclass(frozen=True)
class ProjectRead:
    """A version a project may read, with the terms a site must satisfy to hold it."""

    dataset: DatasetRow
    version: DatasetVersionRow
    owned: bool


def readable_by_project(
    session: Session, project_id: int, owner: str, name: str, version: int | None = None
) -> ProjectRead:
    """The version (latest by default) of `owner`/`name` that project `project_id` may read:
    it owns the dataset or holds a grant. NotFound otherwise, without saying which. For jobs:
    check each site with `residency_allows(Residency(read.dataset.residency), ...)`, then
    `open_plaintext(session, vault, read.version)`."""
    if name_problem(name) is not None:
        raise NotFound("dataset", f"{owner}/{name!r}")
    row = session.execute(
        select(DatasetRow)
        .join(ProjectRow, ProjectRow.id == DatasetRow.project_id)
        .where(_project_by_ref(owner), DatasetRow.name == name)
    ).scalar_one_or_none()
    owned = row is not None and row.project_id == project_id
    if row is None or not (owned or _granted_to(session, row.id, [project_id])):
        raise NotFound("dataset", f"{owner}/{name}")
    query = select(DatasetVersionRow).where(DatasetVersionRow.dataset_id == row.id)
    query = (
        query.where(DatasetVersionRow.number == version)
        if version is not None
        else query.order_by(DatasetVersionRow.number.desc()).limit(1)
    )
    found = session.scalars(query).first()
    if found is None:
        raise NotFound("data", f"of {owner}/{name}" + (f" version {version}" if version else ""))
    return ProjectRead(row, found, owned)


@dataclass(frozen=True)
class Download:
    """A version ready to stream: what it is, and its plaintext chunk by chunk."""

    project: str
    dataset: str
    number: int
    size_bytes: int
    sha256: str
    chunks: Iterator[bytes]


def open_download(
    session: Session,
    vault: Vault,
    who: Principal,
    now: datetime,
    project: str,
    name: str,
    version: int | None = None,
) -> Download:
    """Open a version (the latest by default) for the caller to read; the download is on
    the audit trail before a byte is sent."""
    found = _find(session, who, project, name)
    _require_reader(found)
    query = select(DatasetVersionRow).where(DatasetVersionRow.dataset_id == found.dataset.id)
    query = (
        query.where(DatasetVersionRow.number == version)
        if version is not None
        else query.order_by(DatasetVersionRow.number.desc()).limit(1)
    )
    row = session.scalars(query).first()
    if row is None:
        what = f"version {version} of" if version is not None else "any version of"
        raise NotFound("data", f"({what} {found.project.name}/{found.dataset.name})")
    chunks = open_plaintext(session, vault, row)
    record_as(
        session, who, AuditAction.DOWNLOAD, now, project_id=found.project.id,
        dataset=found.dataset.name, target=f"version {row.number}",
        detail={"project": found.project.name, "version": row.number, "access": found.access.value},
    )  # fmt: skip
    session.commit()
    return Download(
        found.project.name, found.dataset.name, row.number, row.size_bytes, row.sha256, chunks
    )


# --- use cases: grants ------------------------------------------------------------------------------


def grant(
    session: Session, who: Principal, now: datetime, project: str, name: str, draft: GrantDraft
) -> DatasetGrant:
    """Let another project's members read the dataset. Across organisations only with the
    data owner's consent: the owning project's principal investigator, saying so."""
    found = _find(session, who, project, name)
    _require_manager(who, found, f"grant access to {found.project.name}/{found.dataset.name}")
    target = session.scalars(select(ProjectRow).where(_project_by_ref(draft.project))).first()
    if target is None:
        raise InvalidInput.on("project", f"no project named {draft.project!r}")
    if target.id == found.project.id:
        raise InvalidInput.on("project", f"{target.name} owns the dataset already")
    cross = target.organisation_id != found.project.organisation_id
    orgs = _organisation_names(session, {target.organisation_id, found.project.organisation_id})
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
    found = _find(session, who, project, name)
    _require_manager(who, found, f"revoke access to {found.project.name}/{found.dataset.name}")
    target = session.scalars(select(ProjectRow).where(_project_by_ref(grantee))).first()
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


# --- use cases: deletion ------------------------------------------------------------------------------


def delete_dataset(
    session: Session, vault: Vault, who: Principal, now: datetime, project: str, name: str
) -> None:
    """Delete a dataset with every version: the rows holding their wrapped data keys go in
    one transaction (from then on no copy of the ciphertext can be decrypted: the keys were
    nowhere else), then the ciphertext itself."""
    found = _find(session, who, project, name)
    _require_manager(who, found, f"delete {found.project.name}/{found.dataset.name}")
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
    found = _find(session, who, project, name)
    _require_manager(who, found, f"delete versions of {found.project.name}/{found.dataset.name}")
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


# --- use cases: organisation keys ---------------------------------------------------------------------


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
    if _current_key_row(session, organisation_id) is None:
        # A first key, committed on its own (an upload may be making it too: one wins), so
        # that the lock below has a row to hold against the organisation's uploads.
        _add_org_key(session, vault, organisation_id, 1, now)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
    _lock_org_keys(session, organisation_id)
    current = _current_key_row(session, organisation_id)
    old_version = current.version if current else None
    latest = session.scalar(
        select(func.max(OrganisationKeyRow.version)).where(
            OrganisationKeyRow.organisation_id == organisation_id
        )
    )
    version = (latest or 0) + 1
    new = _add_org_key(session, vault, organisation_id, version, now)
    session.flush()
    old_keys: dict[int, Secret] = {}
    versions = list(
        session.scalars(
            select(DatasetVersionRow).where(DatasetVersionRow.organisation_id == organisation_id)
        )
    )
    for row in versions:
        if row.key_version not in old_keys:
            old_keys[row.key_version] = _unwrap_org_key(
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
