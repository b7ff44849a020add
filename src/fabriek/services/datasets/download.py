"""Reading a version: decrypted on the way out, for a caller (on the audit trail before a
byte is sent) or for a project's job."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.audit import AuditAction
from fabriek.domain.errors import NotFound
from fabriek.domain.roles import Principal
from fabriek.services.audit import record_as
from fabriek.services.datasets.keys import unwrap_org_key
from fabriek.services.datasets.permissions import (
    find_dataset,
    require_reader,
)
from fabriek.services.datasets.vault import Vault
from fabriek.store.db import StoreError
from fabriek.store.envelope import Undecryptable, data_key_context, open_sealed, unwrap
from fabriek.store.tables import DatasetVersionRow

log = logging.getLogger("fabriek.datasets")


def open_plaintext(session: Session, vault: Vault, version: DatasetVersionRow) -> Iterator[bytes]:
    """The decrypted data of one version, chunk by chunk. Keys are unwrapped and the object
    opened before this returns (so a missing key or file is an error now, not mid-stream);
    an altered chunk raises Undecryptable while iterating."""
    org_key = unwrap_org_key(session, vault, version.organisation_id, version.key_version)
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
class Download:
    """A version ready to stream: what it is, and its plaintext chunk by chunk (a chunk
    that fails its integrity check is logged, then raises Undecryptable)."""

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
    found = find_dataset(session, who, project, name)
    require_reader(found)
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
    what = f"{found.project.name}/{found.dataset.name} version {row.number}"
    return Download(
        found.project.name, found.dataset.name, row.number, row.size_bytes, row.sha256,
        _logged(chunks, what),
    )  # fmt: skip


def _logged(chunks: Iterator[bytes], what: str) -> Iterator[bytes]:
    # Headers are sent by the time a later chunk fails its check: an altered object can
    # only cut the response short (the client's SHA-256 check catches it), so say so in
    # the log.
    try:
        yield from chunks
    except Undecryptable as exc:
        log.error("download of %s stopped: %s", what, exc)
        raise
