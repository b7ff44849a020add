"""Where datasets' ciphertext lives and the master key that guards their keys; the sweep
of what killed uploads left behind."""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fabriek.domain.datasets import GIB
from fabriek.settings import Settings
from fabriek.store.db import StoreError
from fabriek.store.envelope import (
    CHUNK_BYTES,
    MasterKeyProblem,
    Secret,
    create_master_key,
    key_id,
    read_master_key,
)
from fabriek.store.objects import ObjectStore, Swept
from fabriek.store.tables import DatasetVersionRow, OrganisationKeyRow


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
