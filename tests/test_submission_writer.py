"""Group commit of submissions on the real stores: a batch is one transaction, each caller
gets its own job, and a bad submission in a batch fails alone."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from fabriek.domain.jobs import JobDraft
from fabriek.services.identity.tokens import principal_for_user
from fabriek.services.jobs import PreparedJob, prepare_job
from fabriek.services.jobs.submissions import SubmissionWriter
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import JobEventRow, JobRow, UserRow


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    yield make_sessions(engine)
    engine.dispose()


def prepared(sessions: sessionmaker[Session], name: str) -> PreparedJob:
    with sessions() as session:
        maria = session.scalar(select(UserRow).where(UserRow.username == "maria"))
        assert maria is not None
        who = principal_for_user(session, maria.id, maria.username)
        draft = JobDraft(project="dutch-llm", command=["true"], name=name,
                         earliest_start=datetime(2099, 1, 1, tzinfo=UTC))  # fmt: skip
        return prepare_job(session, who, draft, datetime.now(UTC))


def test_a_batch_is_written_together_and_a_bad_one_fails_alone(
    sessions: sessionmaker[Session], unique: str
) -> None:
    writer = SubmissionWriter(sessions, start=False)
    good = [prepared(sessions, f"{unique}-{i}") for i in range(5)]
    bad = prepared(sessions, f"{unique}-bad")
    bad.values["project_id"] = None  # NOT NULL: the store refuses this row
    results: dict[str, object] = {}

    def submit(job: PreparedJob) -> None:
        try:
            results[job.values["name"]] = writer.write(job)
        except Exception as error:
            results[job.values["name"]] = error

    threads = [threading.Thread(target=submit, args=(j,)) for j in [*good, bad]]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while writer.waiting < 6:  # all six queued before the writer starts: one batch
        assert time.monotonic() < deadline
        time.sleep(0.01)
    writer.start()
    for t in threads:
        t.join()
    writer.close()
    jobs = [results[f"{unique}-{i}"] for i in range(5)]
    assert all(not isinstance(j, Exception) for j in jobs)
    ids = [j.id for j in jobs]  # type: ignore[attr-defined]
    assert len(set(ids)) == 5
    assert isinstance(results[f"{unique}-bad"], Exception)
    with sessions() as session:
        rows = session.execute(select(JobRow.id, JobRow.name).where(JobRow.id.in_(ids)))
        names = {job_id: name for job_id, name in rows}
        assert [names[i] for i in ids] == [f"{unique}-{i}" for i in range(5)]  # each its own
        events = session.scalar(
            select(func.count()).select_from(JobEventRow).where(JobEventRow.job_id.in_(ids))
        )
        assert events == 5
        assert (
            session.scalar(
                select(func.count()).select_from(JobRow).where(JobRow.name == f"{unique}-bad")
            )
            == 0
        )
