"""The store: migrations, refusing a schema that is behind, an unreachable database, atomic writes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from fabriek.api.app import create_app
from fabriek.domain.errors import Conflict
from fabriek.domain.identity.people import UserDraft
from fabriek.domain.roles import Principal, Role
from fabriek.services.identity import users
from fabriek.settings import Settings
from fabriek.store.db import StoreError, make_engine, make_sessions, redact
from fabriek.store.migrate import current_revision, head_revision, require_current, upgrade
from fabriek.store.tables import StaffRoleRow, UserRow
from tests.servers import postgres_unavailable, throwaway_database

ADMIN = Principal(1, "admin", frozenset({(Role.ADMIN, None)}))


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "postgresql" and (reason := postgres_unavailable()):
        pytest.skip(reason)
    with throwaway_database(request.param, tmp_path) as url:
        yield url


def test_upgrade_from_empty_then_current(empty_url: str) -> None:
    engine = make_engine(empty_url)
    assert current_revision(engine) is None
    with pytest.raises(StoreError, match="fabriek db upgrade"):
        require_current(engine)
    assert upgrade(engine) == (None, head_revision())
    require_current(engine)
    assert upgrade(engine) == (head_revision(), head_revision())
    engine.dispose()


def test_app_refuses_a_schema_that_is_behind(empty_url: str) -> None:
    engine = make_engine(empty_url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    engine.dispose()
    with pytest.raises(StoreError) as caught:
        create_app(Settings(database_url=empty_url))
    message = str(caught.value)
    assert "\n" not in message and "`fabriek db upgrade`" in message


def test_unreachable_database_names_the_url_without_password() -> None:
    url = "postgresql+psycopg://fabriek:s3cret@127.0.0.1:1/fabriek"
    with pytest.raises(StoreError) as caught:
        current_revision(make_engine(url))
    message = str(caught.value)
    assert "127.0.0.1:1" in message and "s3cret" not in message and "\n" not in message
    assert "s3cret" not in redact(url)


def test_a_crash_between_two_writes_leaves_nothing(
    empty_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(empty_url)
    upgrade(engine)
    draft = UserDraft(
        username="halfway",
        full_name="Half Way",
        email="half@example.org",
        staff_roles=[{"role": "reviewer"}],  # type: ignore[list-item]
    )

    def crash(self: Session, *args: object, **kwargs: object) -> None:
        raise RuntimeError("power cut between the user and its roles")

    with make_sessions(engine)() as session:
        # The user row is flushed; the crash comes before its roles are written.
        monkeypatch.setattr(Session, "add_all", crash)
        with pytest.raises(RuntimeError):
            users.add_user(session, ADMIN, draft)
        monkeypatch.undo()
    with make_sessions(engine)() as session:
        assert session.scalar(select(func.count()).select_from(UserRow)) == 0
        assert session.scalar(select(func.count()).select_from(StaffRoleRow)) == 0
        users.add_user(session, ADMIN, draft)
        with pytest.raises(Conflict):
            users.add_user(session, ADMIN, draft)
        assert session.scalar(select(func.count()).select_from(UserRow)) == 1
    engine.dispose()


def test_times_come_back_in_utc(empty_url: str) -> None:
    engine = make_engine(empty_url)
    upgrade(engine)
    with make_sessions(engine)() as session:
        row = UserRow(username="tz", full_name="T Z", email="tz@example.org")
        session.add(row)
        session.commit()
    with make_sessions(engine)() as session:
        again = session.scalars(select(UserRow)).one()
        assert again.created_at.tzinfo is not None
        assert abs((datetime.now(UTC) - again.created_at).total_seconds()) < 60
    engine.dispose()
