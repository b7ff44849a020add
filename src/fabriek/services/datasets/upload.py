"""Uploading a version: streamed, hashed and encrypted chunk by chunk on the way in.

An upload never holds a database connection while bytes arrive: it checks and plans in
one short transaction, streams into a locked file in `incoming/`, then commits the row in
another short transaction (under the organisation's key lock, so a key rotation or a
concurrent upload cannot slip between reading the current key and using it)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio.to_thread
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from fabriek.domain.audit import AuditAction
from fabriek.domain.datasets import DatasetVersion, quota_refusal
from fabriek.domain.errors import Conflict, InvalidInput, TooLarge
from fabriek.domain.roles import Principal
from fabriek.services.accounts.terms import require_accepted
from fabriek.services.audit import record_as
from fabriek.services.datasets.keys import (
    current_key_row,
    ensure_org_key,
    lock_org_keys,
    unwrap_org_key,
)
from fabriek.services.datasets.permissions import find_dataset, require_owner_member
from fabriek.services.datasets.vault import Vault
from fabriek.services.datasets.views import version_view
from fabriek.services.transactions import commit
from fabriek.store.db import StoreError
from fabriek.store.envelope import Sealer, Secret, data_key_context, new_key, wrap
from fabriek.store.objects import Incoming, new_object_name
from fabriek.store.tables import DatasetRow, DatasetVersionRow


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
        found = find_dataset(session, who, project, name)
        require_owner_member(found, "upload versions of its datasets")
        require_accepted(session, who.user_id, None, now)
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
    ensure_org_key(sessions, vault, plan.organisation_id, now)
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
        lock_org_keys(session, plan.organisation_id)
        if session.get(DatasetRow, plan.dataset_id) is None:
            raise Conflict(f"dataset {plan.project}/{plan.dataset} was deleted during the upload")
        used = _used_bytes(session, plan.project_id)
        if refusal := quota_refusal(plan.project, used, size, vault.quota_bytes):
            raise TooLarge(refusal)
        current = current_key_row(session, plan.organisation_id)
        if current is None:  # pragma: no cover - made before the upload began
            raise StoreError(f"organisation {plan.organisation_id} has no key")
        org_key = unwrap_org_key(session, vault, plan.organisation_id, current.version)
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
        return version_view(row, {who.user_id: who.username})


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
