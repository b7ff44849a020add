"""The database gauges' values, read from a real store (SQLite and PostgreSQL) at a given
moment: the dispatcher's lag, the mail and harvest backlogs, the leases, the allocations
running low. (The jobs, sites and power are checked over HTTP in test_factory_metrics.)"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fabriek.services.access.config import load_access_config
from fabriek.services.factory_metrics import read_gauges
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import (
    AllocationRow,
    ChargeRow,
    JobEventRow,
    JobRow,
    NotificationRow,
    ProjectRow,
    SiteHarvestRow,
    SiteRow,
    SupportMailRow,
    UserRow,
)
from fabriek.store.tables.leadership import LeaseRow
from tests.servers import postgres_unavailable, prepare, throwaway_database

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
ACCESS = load_access_config()


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sessionmaker[Session]]:
    if request.param == "postgresql" and (reason := postgres_unavailable()):
        pytest.skip(reason)
    with throwaway_database(request.param, tmp_path_factory.mktemp("gauges")) as url:
        prepare(url)
        engine = make_engine(url)
        yield make_sessions(engine)
        engine.dispose()


def gauges(sessions: sessionmaker[Session]) -> dict[tuple[str, tuple[str, ...]], float]:
    with sessions() as session:
        return {
            (sample.name, key): value
            for sample in read_gauges(session, NOW, ACCESS)
            for key, value in sample.values.items()
        }


def _job(session: Session, **fields: object) -> JobRow:
    project = session.scalars(select(ProjectRow)).first()
    user = session.scalars(select(UserRow)).first()
    assert project is not None and user is not None
    job = JobRow(
        project_id=project.id, user_id=user.id, name="j", command=["true"], gpus=1, nodes=1,
        cpus=1, memory_gb=1, time_limit_s=60, **fields,
    )  # fmt: skip
    session.add(job)
    session.flush()
    return job


def test_the_lag_is_the_oldest_job_not_yet_scheduled_or_handed_over(
    sessions: sessionmaker[Session],
) -> None:
    assert gauges(sessions)[("fabriek_dispatch_lag_seconds", ())] == 0
    with sessions() as session:
        # Placed 30 s ago and not yet handed to its engine (submitted long before: it waited).
        placed = _job(
            session, state="starting", reason="starting on amsterdam",
            submitted_at=NOW - timedelta(hours=5), site_id=session.scalar(select(SiteRow.id)),
        )  # fmt: skip
        session.add(JobEventRow(job_id=placed.id, at=NOW - timedelta(hours=1), to_state="starting"))
        session.add(JobEventRow(job_id=placed.id, at=NOW - timedelta(hours=1), to_state="pending"))
        session.add(
            JobEventRow(job_id=placed.id, at=NOW - timedelta(seconds=30), to_state="starting")
        )
        # Waiting for GPUs for an hour: the scheduler has seen it; no lag of the dispatcher.
        _job(
            session, state="pending", reason="Resources: ...", submitted_at=NOW - timedelta(hours=1)
        )
        session.commit()
    assert gauges(sessions)[("fabriek_dispatch_lag_seconds", ())] == 30
    with sessions() as session:
        _job(session, state="pending", reason="queued", submitted_at=NOW - timedelta(seconds=120))
        session.commit()
    found = gauges(sessions)
    assert found[("fabriek_dispatch_lag_seconds", ())] == 120
    assert found[("fabriek_jobs_waiting", ("unplaced", "Queued"))] == 1
    assert found[("fabriek_jobs_waiting", ("unplaced", "Resources"))] == 1
    assert found[("fabriek_jobs", ("unplaced", "pending"))] == 2


def test_mail_waiting_and_refused(sessions: sessionmaker[Session]) -> None:
    before = gauges(sessions)
    assert before[("fabriek_mail_queued", ("support",))] == 0
    with sessions() as session:
        user = session.scalars(select(UserRow)).first()
        assert user is not None
        for minutes, sent, failed in [(40, None, None), (10, None, None), (90, NOW, None),
                                      (80, None, NOW)]:  # fmt: skip
            at = NOW - timedelta(minutes=minutes)
            session.add(
                SupportMailRow(
                    kind="reply",
                    to_address="a@example.org",
                    subject="s",
                    body="b",
                    message_id=f"<{minutes}@x>",
                    created_at=at,
                    next_attempt_at=at,
                    sent_at=sent,
                    failed_at=failed,
                )
            )
        session.add(
            NotificationRow(
                user_id=user.id,
                kind="k",
                subject="s",
                body="b",
                created_at=NOW - timedelta(hours=3),
            )
        )
        session.commit()
    found = gauges(sessions)
    assert found[("fabriek_mail_queued", ("support",))] == 2
    assert found[("fabriek_mail_oldest_queued_age_seconds", ("support",))] == 40 * 60
    assert found[("fabriek_mail_failed", ("support",))] == 1
    assert found[("fabriek_mail_queued", ("notifications",))] == (
        before[("fabriek_mail_queued", ("notifications",))] + 1
    )
    assert found[("fabriek_mail_oldest_queued_age_seconds", ("notifications",))] >= 3 * 3600


def test_harvest_backlog_and_leases(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        site = session.scalars(select(SiteRow).where(SiteRow.name == "groningen")).one()
        session.add(
            SiteHarvestRow(
                site_id=site.id,
                through=NOW - timedelta(hours=2),
                last_run_at=NOW - timedelta(minutes=1),
            )
        )
        session.add(
            LeaseRow(
                role="dispatcher",
                holder="h",
                epoch=7,
                acquired_at=NOW - timedelta(hours=1),
                renewed_at=NOW - timedelta(seconds=4),
                expires_at=NOW + timedelta(seconds=4),
            )
        )
        session.commit()
    found = gauges(sessions)
    assert found[("fabriek_harvest_lag_seconds", ("groningen",))] == 2 * 3600
    assert found[("fabriek_harvest_last_run_timestamp_seconds", ("groningen",))] == (
        (NOW - timedelta(minutes=1)).timestamp()
    )
    assert ("fabriek_harvest_lag_seconds", ("amsterdam",)) not in found
    assert found[("fabriek_lease_renewed_age_seconds", ("dispatcher",))] == 4
    assert found[("fabriek_lease_epoch", ("dispatcher",))] == 7


def test_allocations_running_low_are_counted_without_a_label(
    sessions: sessionmaker[Session],
) -> None:
    before = gauges(sessions)
    with sessions() as session:
        project = session.scalars(select(ProjectRow)).first()
        assert project is not None
        span = {"starts_at": NOW - timedelta(days=1), "ends_at": NOW + timedelta(days=30)}
        low = AllocationRow(project_id=project.id, track="playground", gpu_hours=100.0, **span)
        ample = AllocationRow(project_id=project.id, track="playground", gpu_hours=100.0, **span)
        ended = AllocationRow(
            project_id=project.id, track="playground", gpu_hours=100.0,
            starts_at=NOW - timedelta(days=60), ends_at=NOW - timedelta(days=1),
        )  # fmt: skip
        session.add_all([low, ample, ended])
        session.flush()
        job = _job(session, state="completed", reason="done", submitted_at=NOW)
        session.add(
            ChargeRow(
                allocation_id=low.id,
                job_id=job.id,
                gpus=1,
                gpu_type=None,
                started_at=NOW - timedelta(hours=95),
                ended_at=NOW,
                raw_gpu_hours=95.0,
                factor=1.0,
                gpu_hours=95.0,
            )
        )
        session.commit()
    found = gauges(sessions)
    assert (
        found[("fabriek_allocations_active", ())] == before[("fabriek_allocations_active", ())] + 2
    )
    assert found[("fabriek_allocations_low", ())] == before[("fabriek_allocations_low", ())] + 1
    left = found[("fabriek_allocations_remaining_gpu_seconds", ())]
    assert left == pytest.approx(
        before[("fabriek_allocations_remaining_gpu_seconds", ())] + 105 * 3600
    )
    assert all(len(key) == 0 for name, key in found if name.startswith("fabriek_allocations"))
