"""Tampering with the audit trail in the database itself (SQLite and PostgreSQL): one row
modified, deleted or moved, the newest rows cut off. `verify` (API and CLI) names the
first bad entry; each test puts the row back and the chain is whole again.

These tests own their database and server: a broken chain must never be seen by others.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, delete, insert, select, update

from fabriek.services.demo.seed import demo_token
from fabriek.settings import Settings
from fabriek.store.db import make_engine
from fabriek.store.tables import AuditHeadRow, AuditRow
from tests.conftest import BACKENDS
from tests.servers import LiveServer, live_server, postgres_unavailable, prepare, throwaway_database
from tests.test_cli import fabriek, one_line_error

ENTRIES = 6


@pytest.fixture(scope="module", params=BACKENDS)
def trail(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, Engine]]:
    """A server on a database of its own with a few audit entries, and an engine on it."""
    if request.param == "postgresql" and (reason := postgres_unavailable()):
        pytest.skip(reason)
    with throwaway_database(request.param, tmp_path_factory.mktemp("audit-db")) as url:
        prepare(url)
        settings = Settings(database_url=url, state_dir=tmp_path_factory.mktemp("audit-state"))
        with live_server(settings) as live:
            with admin_client(live) as admin:
                for i in range(ENTRIES):
                    made = admin.post("/api/v1/tokens", json={"name": f"tamper-{i}"})
                    assert made.status_code == 201, made.text
            engine = make_engine(url)
            try:
                yield live, engine
            finally:
                engine.dispose()


def admin_client(live: LiveServer) -> httpx.Client:
    token = demo_token("admin").token
    return httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {token}"})


def verify(live: LiveServer, **params: str) -> dict[str, Any]:
    with admin_client(live) as admin:
        answer = admin.get("/api/v1/audit/verify", params=params)
    assert answer.status_code == 200, answer.text
    report: dict[str, Any] = answer.json()
    return report


def row(engine: Engine, seq: int) -> dict[str, Any]:
    with engine.connect() as conn:
        found = conn.execute(select(AuditRow.__table__).where(AuditRow.seq == seq)).mappings()
        return dict(found.one())


@contextmanager
def restored(engine: Engine, *seqs: int) -> Iterator[None]:
    """Put the rows (and the head) back as they were, whatever the test did to them."""
    kept = [row(engine, s) for s in seqs]
    with engine.connect() as conn:
        head = dict(conn.execute(select(AuditHeadRow.__table__)).mappings().one())
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(delete(AuditRow).where(AuditRow.seq.in_(seqs)))
            conn.execute(insert(AuditRow), kept)
            conn.execute(update(AuditHeadRow).values(seq=head["seq"], hash=head["hash"]))


def tamper(engine: Engine, *statements: Any) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(statement)


def test_a_modified_row_is_named(trail: tuple[LiveServer, Engine]) -> None:
    live, engine = trail
    assert verify(live)["ok"]
    with restored(engine, 3):
        tamper(engine, update(AuditRow).where(AuditRow.seq == 3).values(actor="mallory"))
        report = verify(live)
        assert (report["ok"], report["broken_seq"], report["broken_kind"]) == (False, 3, "altered")
        assert "entry 3" in report["message"]
    with restored(engine, 2):
        detail = {**row(engine, 2)["detail"], "name": "innocent"}
        tamper(engine, update(AuditRow).where(AuditRow.seq == 2).values(detail=detail))
        assert (verify(live)["broken_seq"], verify(live)["broken_kind"]) == (2, "altered")
    assert verify(live)["ok"]


def test_a_deleted_row_is_named(trail: tuple[LiveServer, Engine]) -> None:
    live, engine = trail
    with restored(engine, 4):
        tamper(engine, delete(AuditRow).where(AuditRow.seq == 4))
        report = verify(live)
        assert (report["ok"], report["broken_seq"], report["broken_kind"]) == (False, 4, "removed")
        assert "entry 4 is missing" in report["message"]
    assert verify(live)["ok"]


def test_a_reordered_row_is_named(trail: tuple[LiveServer, Engine]) -> None:
    live, engine = trail
    with restored(engine, 2, 5):
        # Swap the places (sequence numbers) of entries 2 and 5.
        tamper(
            engine,
            update(AuditRow).where(AuditRow.seq == 2).values(seq=-2),
            update(AuditRow).where(AuditRow.seq == 5).values(seq=2),
            update(AuditRow).where(AuditRow.seq == -2).values(seq=5),
        )
        report = verify(live)
        assert (report["ok"], report["broken_seq"], report["broken_kind"]) == (
            False, 2, "reordered",
        )  # fmt: skip
        assert "entry 2 is entry 5" in report["message"]
    assert verify(live)["ok"]


def test_cutting_off_the_newest_rows_is_caught_by_the_head(
    trail: tuple[LiveServer, Engine],
) -> None:
    live, engine = trail
    with admin_client(live) as admin:
        anchor = admin.get("/api/v1/audit/head").json()
    newest = anchor["seq"]
    with restored(engine, newest - 1, newest):
        tamper(engine, delete(AuditRow).where(AuditRow.seq >= newest - 1))
        report = verify(live)  # the head row still names the newest entry
        assert (report["broken_seq"], report["broken_kind"]) == (newest - 1, "removed")
        # A careful intruder also rewinds the head row: only the anchor kept elsewhere tells.
        earlier = row(engine, newest - 2)
        tamper(engine, update(AuditHeadRow).values(seq=earlier["seq"], hash=earlier["hash"]))
        assert verify(live)["ok"]
        report = verify(live, expected_head=anchor["head"])
        assert (report["ok"], report["broken_seq"], report["broken_kind"]) == (
            False, newest - 1, "removed",
        )  # fmt: skip
    assert verify(live, expected_head=anchor["head"])["ok"]


def test_cli_verify_names_the_broken_entry_and_fails(trail: tuple[LiveServer, Engine]) -> None:
    live, engine = trail
    if engine.dialect.name != "sqlite":
        pytest.skip("the CLI is the same on both stores; once is enough")
    env = {"FABRIEK_URL": live.url, "FABRIEK_TOKEN": demo_token("admin").token}
    ok = fabriek("audit", "verify", env=env)
    assert "OK" in ok.stdout and "whole" in ok.stdout
    head = fabriek("audit", "head", env=env).stdout.strip()
    assert fabriek("audit", "verify", "--expected-head", head, env=env).returncode == 0
    with restored(engine, 3):
        tamper(engine, update(AuditRow).where(AuditRow.seq == 3).values(target="token forged"))
        broken = fabriek("audit", "verify", env=env, check=False)
        assert broken.returncode == 1
        assert "BROKEN" in broken.stdout and "entry 3" in broken.stdout
        as_json = fabriek("audit", "verify", "--json", env=env, check=False)
        assert as_json.returncode == 1
        assert json.loads(as_json.stdout)["broken_seq"] == 3


def test_cli_lists_entries_as_a_table_and_json(trail: tuple[LiveServer, Engine]) -> None:
    live, engine = trail
    if engine.dialect.name != "sqlite":
        pytest.skip("the CLI is the same on both stores; once is enough")
    env = {"FABRIEK_URL": live.url, "FABRIEK_TOKEN": demo_token("admin").token}
    table = fabriek("audit", "--action", "token-issue", env=env).stdout
    assert "token-issue" in table and "tamper-0" in table and f"{ENTRIES} entries" in table
    listed = json.loads(fabriek("audit", "--actor", "admin", "--json", env=env).stdout)
    assert {e["action"] for e in listed} == {"token-issue"}
    bad = fabriek("audit", "--action", "teleport", env=env, check=False)
    assert "no action 'teleport'" in one_line_error(bad, 2)
    maria = {"FABRIEK_URL": live.url, "FABRIEK_TOKEN": demo_token("maria").token}
    refused = fabriek("audit", "verify", env=maria, check=False)
    assert "only an admin" in one_line_error(refused, 1)
    hidden = fabriek("audit", "--project", "legal-nl", env=maria, check=False)
    assert "not visible to you" in one_line_error(hidden, 1)
