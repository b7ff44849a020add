"""Many writers appending to the audit trail at once (threads, each with its own connection):
the chain verifies, also while they append, and no sequence number is duplicated or
skipped. Entries of transactions that roll back are gone with them and leave no gap."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from fabriek.domain.audit import AuditAction
from fabriek.services import audit
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import AuditRow
from tests.conftest import BACKENDS
from tests.servers import postgres_unavailable, prepare, throwaway_database

WRITERS = 16
TRANSACTIONS = 15


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "postgresql" and (reason := postgres_unavailable()):
        pytest.skip(reason)
    with throwaway_database(request.param, tmp_path) as url:
        prepare(url, with_demo=False)
        made = make_engine(url)
        try:
            yield made
        finally:
            made.dispose()


def test_concurrent_appends_make_one_gapless_chain(engine: Engine) -> None:
    sessions = make_sessions(engine)
    start = threading.Barrier(WRITERS)

    def writer(n: int) -> int:
        start.wait()
        committed = 0
        for t in range(TRANSACTIONS):
            with sessions() as session:
                # One, two or three entries per transaction; every fifth is rolled back.
                count = 1 + (n + t) % 3
                for k in range(count):
                    audit.record(
                        session, action=AuditAction.ADMIN, at=datetime.now(UTC), actor_id=n,
                        actor=f"writer-{n}", target=f"{t}.{k}", detail={"change": "test"},
                    )  # fmt: skip
                if (n + t) % 5 == 0:
                    session.rollback()
                else:
                    session.commit()
                    committed += count
        return committed

    done = threading.Event()
    seen: list[object] = []

    def verifier() -> int:
        # Verifying while others append must never see a break that is not there.
        checks = 0
        while not done.is_set() or checks == 0:
            with sessions() as session:
                seen.append(audit.check(session)[1])
            checks += 1
        return checks

    with ThreadPoolExecutor(WRITERS + 1) as pool:
        checking = pool.submit(verifier)
        expected = sum(pool.map(writer, range(WRITERS)))
        done.set()
        assert checking.result() >= 1
    assert seen and all(broken is None for broken in seen), seen

    with sessions() as session:
        seqs = list(session.scalars(select(AuditRow.seq).order_by(AuditRow.seq)))
        assert seqs == list(range(1, expected + 1))
        count, broken = audit.check(session)
        assert broken is None, broken
        assert count == expected
        assert audit.head(session).seq == expected
        # Each writer's entries of one transaction are consecutive: appends never interleave.
        rows = session.execute(select(AuditRow.actor, AuditRow.target).order_by(AuditRow.seq))
        runs = [(actor, (target or "").split(".")[0]) for actor, target in rows]
        changes = sum(1 for a, b in pairwise(runs) if a != b)
        transactions = len({(a, t) for a, t in runs})
        assert changes == transactions - 1
