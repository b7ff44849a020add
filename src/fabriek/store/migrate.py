"""Alembic, driven from code: upgrade the schema, and tell whether it is behind."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from fabriek.store.db import StoreError, redact

MIGRATIONS = Path(__file__).parent / "migrations"


def _config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # '%' is Alembic's interpolation character; a password may contain one.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str | None:
    """The newest migration this code ships."""
    return ScriptDirectory.from_config(_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at (None: empty database)."""
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except OperationalError as exc:
        raise StoreError(
            f"cannot reach the database at {redact(str(engine.url.render_as_string(False)))}: "
            f"{str(exc.orig).strip().splitlines()[0] if exc.orig else exc}"
        ) from None


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate to the newest schema (or to `revision`); returns (from, to) revisions."""
    before = current_revision(engine)
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        if sqlite:
            # SQLite's batch migrations rebuild a table (copy, drop, rename): with foreign keys
            # enforced, dropping a table that rows of another refer to fails, so any factory
            # with users could not upgrade. Off for the migration (only outside a
            # transaction does the pragma take), and every reference checked after.
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        try:
            with conn.begin():
                cfg = _config(engine.url.render_as_string(hide_password=False))
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
            if sqlite and (broken := conn.exec_driver_sql("PRAGMA foreign_key_check").all()):
                raise StoreError(
                    f"the migration left {len(broken)} broken reference(s): {broken[:3]}"
                )
        finally:
            if sqlite:
                conn.rollback()
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()
    return before, current_revision(engine) if revision != "head" else head_revision()


def require_current(engine: Engine) -> None:
    """Refuse to serve on a schema that is behind (or ahead of) this code."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise StoreError(
            f"the database schema is at {current or 'nothing'} but this Fabriek needs {head}: "
            "run `fabriek db upgrade`"
        )
