"""Electing the dispatcher and the housekeeping through the shared database (issue 20,
point 8): the leases on SQLite and PostgreSQL under contention, the fence that keeps an
old leader's writes out, and, end to end, two `fabriek serve` processes with separate state
folders on one PostgreSQL database and one real Slurm cluster, the leader killed mid-stream
(tests/slurm/test_two_servers.py)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fabriek.domain.leases import DISPATCHER, HOUSEKEEPING, LeaseTerms, Outcome
from fabriek.services.jobs.leadership import LeaseKeeper, LeaseLost, leases, try_role
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import SiteRow
from tests.servers import postgres_unavailable, prepare, throwaway_database

# Short leases, so that a test of expiry takes a second, not six.
SHORT = LeaseTerms(ttl_s=1.2, renew_every_s=0.3, margin_s=0.3)


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    if request.param == "postgresql" and (reason := postgres_unavailable()):
        pytest.skip(reason)
    with throwaway_database(request.param, tmp_path) as url:
        prepare(url, with_demo=False)
        engine = make_engine(url)
        yield make_sessions(engine)
        engine.dispose()


def test_of_many_servers_trying_at_once_one_takes_each_role(
    sessions: sessionmaker[Session],
) -> None:
    outcomes: list[tuple[str, Outcome]] = []
    gate = threading.Barrier(8)

    def contend(name: str) -> None:
        gate.wait()
        for _ in range(5):
            outcome, _lease, _old = try_role(sessions, DISPATCHER, name, SHORT)
            outcomes.append((name, outcome))

    threads = [threading.Thread(target=contend, args=(f"s{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = {name for name, outcome in outcomes if outcome != Outcome.REFUSED}
    with sessions() as session:
        (lease,) = leases(session)
    assert won == {lease.holder} and lease.epoch == 1
    # The winner renewed in the same epoch; every other attempt was refused.
    assert Counter(o for _n, o in outcomes) == {
        Outcome.TAKEN: 1, Outcome.RENEWED: 4, Outcome.REFUSED: 35,
    }  # fmt: skip


def test_an_expired_lease_is_taken_by_one_contender_in_the_next_epoch(
    sessions: sessionmaker[Session],
) -> None:
    assert try_role(sessions, DISPATCHER, "old", SHORT)[0] == Outcome.TAKEN
    time.sleep(SHORT.ttl_s + 0.2)
    results: list[Outcome] = []
    gate = threading.Barrier(6)

    def contend(name: str) -> None:
        gate.wait()
        results.append(try_role(sessions, DISPATCHER, name, SHORT)[0])

    threads = [threading.Thread(target=contend, args=(f"new{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.value for r in results) == ["refused"] * 5 + ["taken"]
    with sessions() as session:
        (lease,) = leases(session)
    assert lease.epoch == 2 and lease.holder.startswith("new")
    # The old holder, back from a pause, is refused: it does not get its role back.
    assert try_role(sessions, DISPATCHER, "old", SHORT)[0] == Outcome.REFUSED


def test_an_old_leaders_writes_are_fenced_out(sessions: sessionmaker[Session]) -> None:
    old = LeaseKeeper(sessions, SHORT, roles=[DISPATCHER], holder="old")
    old.attempt()
    assert old.holds(DISPATCHER) and old.gained()[0].epoch == 1
    with sessions() as session:
        session.add(
            SiteRow(name="fenced", city="Delft", province="Zuid-Holland", jurisdiction="NL")
        )
        old.fence(session, DISPATCHER)  # still the holder: it may commit
        session.rollback()
    # It stalls past its lease; another server takes over.
    time.sleep(SHORT.ttl_s + 0.2)
    assert not old.holds(DISPATCHER)
    new = LeaseKeeper(sessions, SHORT, roles=[DISPATCHER], holder="new")
    new.attempt()
    (gained,) = new.gained()
    assert gained.epoch == 2 and gained.inherits  # the old one did not hand it back
    # Even if the old one believed it still held the role (a clock gone wrong), the store
    # refuses its write: the epoch moved on.
    old._deadline[DISPATCHER] = time.monotonic() + 60
    with sessions() as session:
        session.add(
            SiteRow(name="fenced", city="Delft", province="Zuid-Holland", jurisdiction="NL")
        )
        with pytest.raises(LeaseLost):
            old.fence(session, DISPATCHER)
        session.rollback()
    with sessions() as session:
        assert session.scalar(select(SiteRow).where(SiteRow.name == "fenced")) is None


def test_a_server_that_stops_hands_its_roles_back(sessions: sessionmaker[Session]) -> None:
    first = LeaseKeeper(sessions, SHORT, holder="first")
    first.start()
    assert first.holds(DISPATCHER) and first.holds(HOUSEKEEPING)
    second = LeaseKeeper(sessions, SHORT, holder="second")
    second.attempt()
    assert not second.holds(DISPATCHER) and second.gained() == []
    first.stop()
    second.attempt()  # at once, not after the lease ran out
    assert second.holds(DISPATCHER) and second.holds(HOUSEKEEPING)
    # Handed back cleanly: no work of the first can be half done.
    assert {(g.role, g.epoch, g.inherits) for g in second.gained()} == {
        (DISPATCHER, 2, False), (HOUSEKEEPING, 2, False),
    }  # fmt: skip


def test_a_leader_that_cannot_renew_stops_by_its_own_clock(
    sessions: sessionmaker[Session],
) -> None:
    keeper = LeaseKeeper(sessions, SHORT, roles=[DISPATCHER], holder="cut-off")
    keeper.attempt()
    began = time.monotonic()
    assert keeper.holds(DISPATCHER)
    # No renewal reaches the store from now on (it is unreachable, or this server stalls).
    while keeper.holds(DISPATCHER):
        time.sleep(0.02)
    assert time.monotonic() - began <= SHORT.ttl_s - SHORT.margin_s + 0.05
