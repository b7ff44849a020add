"""Backups while the server runs, and restoring one on a fresh machine.

A backup is consistent because the database is copied as of one moment (SQLite's online
backup API; PostgreSQL: `pg_dump` run on a snapshot exported by a transaction that stays
open while it runs), and the dataset objects it names are immutable files: they are copied
once before that moment (most of them, while uploads go on) and the ones the copy names but
the first pass missed are fetched after it. Objects that the copy does not name (uploads
after the moment) are left out; a removal between the two passes is recorded in the
manifest's notes. The master key is never copied: see `domain.backup`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
from sqlalchemy import Engine, inspect, make_url

from fabriek import __version__
from fabriek.domain.backup import (
    DATABASE_FILES,
    MANIFEST,
    FileSum,
    Manifest,
    from_json,
    object_name,
    object_path,
    to_json,
)
from fabriek.domain.errors import Conflict, InvalidInput
from fabriek.settings import Settings
from fabriek.store.db import StoreError, make_engine, make_sessions
from fabriek.store.envelope import MasterKeyProblem, key_id, read_master_key
from fabriek.store.migrate import upgrade
from fabriek.store.objects import ObjectStore

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Snapshot:
    """What the database copy holds that the backup needs to know."""

    revision: str | None
    object_names: frozenset[str]
    master_key_ids: tuple[str, ...]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def file_sum(root: Path, relative: str) -> FileSum:
    path = root / relative
    return FileSum(relative, path.stat().st_size, sha256_of(path))


def database_kind(url: str) -> str:
    """`sqlite` or `postgresql`: the kind of store this URL names."""
    backend = make_url(url).get_backend_name()
    if backend not in DATABASE_FILES:
        raise StoreError(f"cannot back up or restore a {backend!r} database")
    return backend


def libpq_env(url: str) -> dict[str, str]:
    """The environment that points PostgreSQL's own tools at this database (the password
    in PGPASSWORD, never on a command line others can read)."""
    parsed = make_url(url)
    env = dict(os.environ)
    for name, value in (
        ("PGHOST", parsed.host), ("PGPORT", parsed.port), ("PGUSER", parsed.username),
        ("PGPASSWORD", parsed.password), ("PGDATABASE", parsed.database),
    ):  # fmt: skip
        if value is not None:
            env[name] = str(value)
    return env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise StoreError(f"{name} is not installed: install PostgreSQL's client tools")
    return found


def _run(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise StoreError(f"{Path(args[0]).name} failed: {last}")


_SNAPSHOT_QUERIES = (
    "SELECT version_num FROM alembic_version",
    "SELECT object_name FROM dataset_versions",
    "SELECT DISTINCT master_key_id FROM organisation_keys ORDER BY 1",
)


def _snapshot(rows: list[list[tuple[object, ...]]]) -> Snapshot:
    revision, names, keys = rows
    return Snapshot(
        str(revision[0][0]) if revision else None,
        frozenset(str(n) for (n,) in names),
        tuple(str(k) for (k,) in keys),
    )


def copy_sqlite(url: str, target: Path) -> Snapshot:
    """SQLite's online backup of the store into `target`: one consistent moment, while
    the server goes on writing."""
    source_path = make_url(url).database
    if not source_path or not Path(source_path).exists():
        raise StoreError(f"no SQLite database at {source_path!r}")
    source = sqlite3.connect(source_path, timeout=30)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
        copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        return _snapshot([copy.execute(q).fetchall() for q in _SNAPSHOT_QUERIES])
    finally:
        copy.close()
        source.close()


def copy_postgresql(url: str, target: Path) -> Snapshot:
    """`pg_dump` (custom format) of the store into `target`, on a snapshot this function
    exports and reads the object names from, so both see the same moment."""
    pg_dump = _tool("pg_dump")
    env = libpq_env(url)
    with _pg(env) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        rows = [conn.execute(q).fetchall() for q in _SNAPSHOT_QUERIES]
        _run([pg_dump, "--format=custom", f"--snapshot={row[0]}", f"--file={target}"], env)
        conn.execute("COMMIT")
    return _snapshot(rows)


@contextmanager
def _pg(env: dict[str, str]) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    keys = {"PGHOST": "host", "PGPORT": "port", "PGUSER": "user", "PGPASSWORD": "password",
            "PGDATABASE": "dbname"}  # fmt: skip
    params = {v: env[k] for k, v in keys.items() if k in env}
    with psycopg.connect(autocommit=True, **params) as conn:  # type: ignore[arg-type]
        yield conn


def _copy_object(store: ObjectStore, name: str, folder: Path) -> bool:
    """Copy one stored object into the backup folder; False when the store has it no more."""
    target = folder / object_path(name)
    if target.exists():
        return True
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copyfile(store.path_of(name), target)
    except FileNotFoundError:
        return False
    return True


def take_backup(settings: Settings, destination: Path, now: datetime) -> Manifest:
    """Copy the store (database and dataset objects) into the new folder `destination`,
    with its manifest; written aside and renamed, so a folder with a manifest is whole."""
    if destination.exists():
        raise Conflict(f"{destination} exists already: name a new folder for the backup")
    kind = database_kind(settings.database_url)
    work = destination.with_name(destination.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, mode=0o700)
    store = ObjectStore(settings.datasets_dir or settings.state_dir / "datasets")
    for name in store.names():  # the first pass, before the moment
        _copy_object(store, name, work)
    database = DATABASE_FILES[kind]
    copy = copy_sqlite if kind == "sqlite" else copy_postgresql
    snapshot = copy(settings.database_url, work / database)
    notes = []
    for name in sorted(snapshot.object_names):  # the second pass: what the first missed
        if not _copy_object(store, name, work):
            notes.append(f"object {name} was removed from the store before it was copied")
    for extra in store.names():  # uploaded after the moment: the copy does not name them
        if extra not in snapshot.object_names:
            (work / object_path(extra)).unlink(missing_ok=True)
    present = sorted(n for n in snapshot.object_names if (work / object_path(n)).exists())
    manifest = Manifest(
        fabriek_version=__version__,
        created_at=now.isoformat(),
        database_kind=kind,
        schema_revision=snapshot.revision,
        database=file_sum(work, database),
        objects=tuple(file_sum(work, object_path(n)) for n in present),
        master_key_ids=snapshot.master_key_ids,
        notes=tuple(notes),
    )
    (work / MANIFEST).write_text(to_json(manifest))
    work.rename(destination)
    return manifest


@dataclass(frozen=True)
class Restored:
    """What a restore did and found."""

    manifest: Manifest
    revision: str | None  # the schema after the restore (upgraded to this code's)
    objects: int
    master_key: str  # "matches", or why datasets cannot be read yet
    audit_entries: int
    audit_break: str | None


def read_backup(folder: Path) -> Manifest:
    """The manifest of a backup folder, every file checked against its size and SHA-256."""
    try:
        manifest = from_json((folder / MANIFEST).read_text())
    except FileNotFoundError:
        raise InvalidInput(f"{folder} holds no {MANIFEST}: not a (whole) backup") from None
    for f in manifest.files():
        path = folder / f.path
        if not path.is_file():
            raise InvalidInput(f"the backup lacks {f.path}")
        if path.stat().st_size != f.bytes or sha256_of(path) != f.sha256:
            raise InvalidInput(f"{f.path} does not match its checksum: the backup is damaged")
    return manifest


def _require_empty(engine: Engine) -> None:
    if inspect(engine).get_table_names():
        raise Conflict("the target database holds tables: restore into a fresh, empty database")


def _check_master_key(settings: Settings, manifest: Manifest, supplied: Path | None) -> str:
    """Put the supplied master key in place (0600), then say whether it is the right one."""
    path = settings.master_key_file or settings.state_dir / "master.key"
    if supplied is not None:
        if path.exists() and path.read_bytes() != supplied.read_bytes():
            raise Conflict(f"a different master key is at {path} already: move it away first")
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(supplied.read_bytes())
    try:
        key = read_master_key(path)
    except MasterKeyProblem as exc:
        raise StoreError(str(exc)) from None
    if key is None:
        if not manifest.master_key_ids:
            return "matches (no dataset keys yet)"
        return f"no master key at {path}: supply it (--master-key) before serving datasets"
    if manifest.master_key_ids and key_id(key) not in manifest.master_key_ids:
        raise Conflict(
            f"the master key {key_id(key)} is not the one that wrapped this backup's keys "
            f"({', '.join(manifest.master_key_ids)})"
        )
    return "matches"


def restore_backup(settings: Settings, folder: Path, master_key: Path | None) -> Restored:
    """Restore a backup into the configured (empty) database and dataset store; upgrade
    the schema to this code's, check the master key and the audit chain."""
    from fabriek.services.audit import check  # the audit service imports much; only here

    manifest = read_backup(folder)
    kind = database_kind(settings.database_url)
    if kind != manifest.database_kind:
        raise InvalidInput(
            f"this backup holds a {manifest.database_kind} database; the target is {kind}"
        )
    engine = make_engine(settings.database_url)
    try:
        _require_empty(engine)
        key_state = _check_master_key(settings, manifest, master_key)
        source = folder / manifest.database.path
        if kind == "sqlite":
            engine.dispose()
            target = Path(str(make_url(settings.database_url).database))
            for leftover in (
                target,
                *(target.with_name(target.name + e) for e in ("-wal", "-shm")),
            ):
                leftover.unlink(missing_ok=True)
            shutil.copyfile(source, target)
        else:
            env = libpq_env(settings.database_url)
            _run([_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error",
                  "--single-transaction", f"--dbname={env['PGDATABASE']}", str(source)],
                 env)  # fmt: skip
        store = ObjectStore(settings.datasets_dir or settings.state_dir / "datasets")
        store.prepare()
        for f in manifest.objects:
            target_path = store.path_of(object_name(f.path))
            target_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copyfile(folder / f.path, target_path)
        _, revision = upgrade(engine)
        with make_sessions(engine)() as session:
            entries, broken = check(session)
    finally:
        engine.dispose()
    return Restored(
        manifest, revision, len(manifest.objects), key_state, entries,
        None if broken is None else f"entry {broken.seq}: {broken.message}",
    )  # fmt: skip
