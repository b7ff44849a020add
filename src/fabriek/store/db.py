"""Connecting to the store: engines, sessions, and the schema-version check."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class DatabaseLimits:
    """How long the server's work may wait on the store, so that no request waits
    unbounded (each limit, when passed, is answered 503 with Retry-After by the API):
    for a connection from the pool, for a statement (PostgreSQL's statement_timeout), for a
    lock (its lock_timeout), and for a new connection to open. Sizes of the pool besides."""

    pool_size: int = 20
    max_overflow: int = 20
    pool_timeout_s: float = 5.0
    statement_timeout_s: float | None = 30.0
    lock_timeout_s: float | None = 5.0
    connect_timeout_s: int = 5


def _postgres_options(limits: DatabaseLimits) -> dict[str, Any]:
    """psycopg's connection arguments for the limits: the timeouts as session settings."""
    settings = []
    if limits.statement_timeout_s:
        settings.append(f"-c statement_timeout={int(limits.statement_timeout_s * 1000)}")
    if limits.lock_timeout_s:
        settings.append(f"-c lock_timeout={int(limits.lock_timeout_s * 1000)}")
    options: dict[str, Any] = {"connect_timeout": limits.connect_timeout_s}
    if settings:
        options["options"] = " ".join(settings)
    return options


def make_engine(url: str, limits: DatabaseLimits | None = None) -> Engine:
    """An engine for the URL; on SQLite, creates the file's directory and sets pragmas.
    Without `limits` (tools, migrations), statements and locks may wait as long as they
    need; the server passes its own (settings `FABRIEK_DATABASE_*`)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"cannot parse FABRIEK_DATABASE_URL {url!r}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        pool = {"pool_timeout": limits.pool_timeout_s} if limits is not None else {}
        engine = create_engine(url, connect_args={"check_same_thread": False}, **pool)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() != "postgresql":
        raise StoreError(
            f"unsupported database {parsed.get_backend_name()!r}: use sqlite:/// or postgresql+psycopg://"
        )
    if limits is None:
        return create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True)
    # Pre-ping: a connection PostgreSQL dropped (a restart) is replaced at checkout, so the
    # service resumes by itself.
    return create_engine(
        url,
        pool_size=limits.pool_size,
        max_overflow=limits.max_overflow,
        pool_timeout=limits.pool_timeout_s,
        pool_pre_ping=True,
        connect_args=_postgres_options(limits),
    )


def make_sessions(engine: Engine) -> sessionmaker[Session]:
    """The session factory services use; objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)
