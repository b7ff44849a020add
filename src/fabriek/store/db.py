"""Connecting to the store: engines, sessions, and the schema-version check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

# Re-exported: the store's modules and the services raise it from here.
from fabriek.domain.errors import StoreError as StoreError


def redact(url: str) -> str:
    """The URL as safe to print: the password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable database URL>"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers and one writer work at once; foreign keys are off by default in SQLite.
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def database_files(url: str) -> tuple[Path, ...]:
    """The files that hold an embedded (SQLite) store, with its journal and WAL; none for a
    database server. What jobs must never read."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in {None, "", ":memory:"}:
        return ()
    main = Path(str(parsed.database)).resolve()
    return (main, *(main.with_name(main.name + end) for end in ("-wal", "-shm", "-journal")))


def make_engine(url: str) -> Engine:
    """An engine for the URL; on SQLite, creates the file's directory and sets pragmas."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"cannot parse FABRIEK_DATABASE_URL {url!r}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() != "postgresql":
        raise StoreError(
            f"unsupported database {parsed.get_backend_name()!r}: use sqlite:/// or postgresql+psycopg://"
        )
    return create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True)


def make_sessions(engine: Engine) -> sessionmaker[Session]:
    """The session factory services use; objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)
