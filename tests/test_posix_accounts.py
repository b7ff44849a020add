"""POSIX accounts and groups in the store, on SQLite and PostgreSQL: allocated once, the
same for every process that asks at the same moment, and never two people on one."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

from sqlalchemy import select

from fabriek.domain.accounts import DEFAULT_ID_BASE
from fabriek.services.accounts.posix import posix_accounts, posix_groups
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import OrganisationRow, PosixAccountRow, ProjectRow, UserRow

PEOPLE = ["ana.lima", "Ana-Lima", "ana-lima", "9lives", "root", "x" * 63]


def test_people_asked_for_at_once_get_one_account_each(database_url: str, unique: str) -> None:
    engine = make_engine(database_url)
    sessions = make_sessions(engine)
    try:
        with sessions() as session:
            org = session.scalars(select(OrganisationRow.id)).first()
            assert org is not None
            rows = [
                UserRow(username=f"{name[:50]}{unique}" if i > 2 else f"{unique}{name}",
                        full_name=name, email=f"{i}{unique}@example.org", organisation_id=org)
                for i, name in enumerate(PEOPLE)
            ]  # fmt: skip
            project = ProjectRow(name=f"{unique}.group", title="t", organisation_id=org)
            session.add_all([*rows, project])
            session.commit()
            ids = [r.id for r in rows]
            project_id = project.id
        barrier = Barrier(6)

        def allocate(_: int) -> dict[int, tuple[str, int]]:
            with sessions() as session:
                barrier.wait()
                found = posix_accounts(session, ids, DEFAULT_ID_BASE)
                posix_groups(session, [project_id], DEFAULT_ID_BASE)
                session.commit()
                return {u: (a.username, a.uid) for u, a in found.items()}

        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(allocate, range(6)))
        assert all(a == answers[0] for a in answers)
        names = [n for n, _ in answers[0].values()]
        uids = [u for _, u in answers[0].values()]
        assert len(set(names)) == len(names) and len(set(uids)) == len(uids)
        # UIDs are the local engine's: the base plus the person's number.
        assert answers[0] == {i: (answers[0][i][0], DEFAULT_ID_BASE + i) for i in ids}
        assert f"{unique}ana-lima" in names and not any(n in {"root", "9lives"} for n in names)
        with sessions() as session:
            stored = session.scalars(
                select(PosixAccountRow).where(PosixAccountRow.user_id.in_(ids))
            ).all()
            assert len(stored) == len(ids)
            group = posix_groups(session, [project_id], DEFAULT_ID_BASE)[project_id]
            assert group.name == f"{unique}-group" and group.gid not in uids
    finally:
        engine.dispose()
