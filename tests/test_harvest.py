"""The harvest service on the real stores (SQLite and PostgreSQL): records read by the
parsers from captured Slurm 22.05 accounting (tests/slurm/data/) become jobs, charges and
energy hours exactly once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from fabriek.domain.slurm_accounting import (
    MEASURED_SOURCE,
    AccountingRecord,
    parse_sacct,
    parse_slurmdb_jobs,
)
from fabriek.services.access.allocations import usage
from fabriek.services.access.config import load_access_config
from fabriek.services.jobs import harvest
from fabriek.services.public_dashboard import monthly_records
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import (
    AllocationRow,
    AuditRow,
    ChargeRow,
    JobEnergyRow,
    JobRow,
    PosixAccountRow,
    PosixGroupRow,
    ProjectRow,
    SiteHarvestRow,
    SiteRow,
    UserRow,
)
from tests.servers import postgres_unavailable, prepare, throwaway_database

DATA = Path(__file__).parent / "slurm" / "data"
ACCESS = load_access_config()
NOW = datetime.now(UTC).replace(microsecond=0)
SITE = "groningen"  # one GPU type (h200): what a record that names none ran on


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def sessions(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sessionmaker[Session]]:
    """A demo factory in which site user fab-hv-ann is maria, fab-hv-ben is pieter, and
    Slurm account hvclimate is project dutch-llm."""
    if request.param == "postgresql" and (reason := postgres_unavailable()):
        pytest.skip(reason)
    with throwaway_database(request.param, tmp_path_factory.mktemp("db")) as url:
        prepare(url)
        engine = make_engine(url)
        made = make_sessions(engine)
        with made() as session:
            users = dict(session.execute(select(UserRow.username, UserRow.id)).all())
            project = session.scalar(select(ProjectRow.id).where(ProjectRow.name == "dutch-llm"))
            assert project is not None
            session.add_all(
                [
                    PosixAccountRow(user_id=users["maria"], username="fab-hv-ann", uid=1900400001),
                    PosixAccountRow(user_id=users["pieter"], username="fab-hv-ben", uid=1900400002),
                    PosixGroupRow(project_id=project, name="hvclimate", gid=1900400100),
                ]
            )
            session.commit()
        yield made
        engine.dispose()


def _recent(records: list[AccountingRecord], cluster: str) -> list[AccountingRecord]:
    """The captured records moved to the last hours (inside the demo's allocations), on a
    cluster of the test's own."""
    shift = (NOW - timedelta(hours=2)) - min(r.submitted_at for r in records)

    def move(t: datetime | None) -> datetime | None:
        return None if t is None else t + shift

    return [
        replace(
            r,
            cluster=cluster,
            submitted_at=r.submitted_at + shift,
            started_at=move(r.started_at),
            ended_at=move(r.ended_at),
        )
        for r in records
    ]


def _sacct(cluster: str) -> list[AccountingRecord]:
    return _recent(parse_sacct((DATA / "sacct_22.05_allocations.txt").read_text()), cluster)


def _ingest(
    session: Session, records: list[AccountingRecord], **kw: object
) -> harvest.HarvestResult:
    result = harvest.ingest(
        session, SITE, records, NOW, access=ACCESS, tag_prefix="fabriek", through=NOW, **kw
    )  # type: ignore[arg-type]
    session.commit()
    return result


def _counts(session: Session, cluster: str) -> tuple[int, int, float]:
    jobs = select(JobRow.id).where(JobRow.slurm_cluster == cluster)
    return (
        session.scalar(select(func.count()).select_from(jobs.subquery())) or 0,
        session.scalar(select(func.count(ChargeRow.id)).where(ChargeRow.job_id.in_(jobs))) or 0,
        session.scalar(select(func.sum(ChargeRow.gpu_hours)).where(ChargeRow.job_id.in_(jobs)))
        or 0.0,
    )


def test_each_run_is_a_job_charged_once_and_a_second_harvest_adds_nothing(
    sessions: sessionmaker[Session],
) -> None:
    records = _sacct("hva")
    with sessions() as session:
        allocation = session.scalar(
            select(AllocationRow.id)
            .join(ProjectRow, ProjectRow.id == AllocationRow.project_id)
            .where(ProjectRow.name == "dutch-llm")
        )
        assert allocation is not None
        before = usage(session, NOW, ACCESS, [allocation])[allocation].budget.consumed.value
        first = _ingest(session, records)
        # 12 runs: 11 of fab-hv-ann and fab-hv-ben in hvclimate, 1 of root (not Fabriek's).
        assert (first.records, first.added, first.unmatched) == (12, 11, 1)
        jobs, charges, gpu_hours = _counts(session, "hva")
        assert (jobs, charges) == (11, 11)
        # GPU-hours from the allocated TRES: h200 (the site's type) at its factor.
        raw = sum(r.gpus * r.elapsed_s for r in records if r.user != "root") / 3600
        assert gpu_hours == pytest.approx(raw * ACCESS.gpu_hour_factors["h200"])
        after = usage(session, NOW, ACCESS, [allocation])[allocation].budget.consumed.value
        assert after - before == pytest.approx(gpu_hours)

        second = _ingest(session, records)
        assert (second.added, second.corrected, second.unchanged) == (0, 0, 11)
        assert _counts(session, "hva") == (jobs, charges, pytest.approx(gpu_hours))
        unmatched = session.scalar(
            select(SiteHarvestRow.unmatched)
            .join(SiteRow, SiteRow.id == SiteHarvestRow.site_id)
            .where(SiteRow.name == SITE)
        )
        root = [e for e in unmatched or [] if e["user"] == "root"]
        assert [(e["account"], e["count"]) for e in root] == [("root", 1)]  # not twice


def test_jobs_have_their_owner_project_state_and_the_requeued_run_its_own_row(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        _ingest(session, _sacct("hvb"))
        rows = session.execute(
            select(JobRow, UserRow.username, ProjectRow.name)
            .join(UserRow, UserRow.id == JobRow.user_id)
            .join(ProjectRow, ProjectRow.id == JobRow.project_id)
            .where(JobRow.slurm_cluster == "hvb")
            .order_by(JobRow.slurm_job_id, JobRow.slurm_submitted_at)
        ).all()
        by_id = [(j.slurm_job_id, j.state, u, p) for j, u, p in rows]
        assert (2, "completed", "maria", "dutch-llm") in by_id
        assert (4, "failed", "maria", "dutch-llm") in by_id
        assert (6, "cancelled", "maria", "dutch-llm") in by_id
        assert [s for i, s, *_ in by_id if i == 5] == ["cancelled", "completed"]
        assert all(j.origin == "slurm" and j.placed_gpu_type == "h200" for j, *_ in rows)
        two_nodes = next(j for j, *_ in rows if j.slurm_job_id == 2)
        assert (two_nodes.nodes, two_nodes.gpus) == (2, 4)
        # Modelled energy, hour by hour, as for Fabriek's own jobs.
        sources = set(
            session.scalars(select(JobEnergyRow.source).where(JobEnergyRow.job_id == two_nodes.id))
        )
        assert sources and all(s.startswith("modelled") for s in sources)


def test_late_energy_corrects_the_job_and_its_one_charge(sessions: sessionmaker[Session]) -> None:
    records = _sacct("hvc")
    with sessions() as session:
        _ingest(session, records)
        _, charges, gpu_hours = _counts(session, "hvc")
        # slurmdbd later has the energy, and an end time one second later, of job 1.
        late = [
            replace(r, energy_j=7_200_000, elapsed_s=r.elapsed_s + 1) if r.job_id == 1 else r
            for r in records
        ]
        again = _ingest(session, late)
        assert (again.added, again.corrected) == (0, 1)
        job = session.scalar(
            select(JobRow).where(JobRow.slurm_cluster == "hvc", JobRow.slurm_job_id == 1)
        )
        assert job is not None
        energy = session.execute(
            select(func.sum(JobEnergyRow.gpu_kwh), func.min(JobEnergyRow.source)).where(
                JobEnergyRow.job_id == job.id
            )
        ).one()
        assert energy[0] == pytest.approx(2.0) and energy[1] == MEASURED_SOURCE
        one_more = ACCESS.gpu_hour_factors["h200"] / 3600  # 1 GPU, 1 s more
        assert _counts(session, "hvc") == (11, charges, pytest.approx(gpu_hours + one_more))


def test_a_job_fabriek_submitted_gets_its_key_and_slurms_figures_in_its_one_charge(
    sessions: sessionmaker[Session],
) -> None:
    records = _sacct("hvd")
    record = next(r for r in records if r.job_id == 7)  # 1 GPU in Slurm's accounting
    assert record.started_at is not None and record.ended_at is not None
    with sessions() as session:
        site = session.scalar(select(SiteRow.id).where(SiteRow.name == SITE))
        user = session.scalar(select(UserRow.id).where(UserRow.username == "maria"))
        allocation = session.scalar(
            select(AllocationRow)
            .join(ProjectRow, ProjectRow.id == AllocationRow.project_id)
            .where(ProjectRow.name == "dutch-llm")
        )
        assert site is not None and user is not None and allocation is not None
        # Fabriek charged it for 2 GPUs (what it asked for); Slurm allocated 1.
        mine = JobRow(
            project_id=allocation.project_id, user_id=user, name="capture", gpus=2, nodes=1,
            cpus=1, memory_gb=1, time_limit_s=600, state="completed", site_id=site,
            handle="7", allocation_id=allocation.id, charge_factor=1.0,
            started_at=record.started_at, ended_at=record.ended_at,
        )  # fmt: skip
        session.add(mine)
        session.flush()
        seconds = (record.ended_at - record.started_at).total_seconds()
        session.add(
            ChargeRow(
                allocation_id=allocation.id, job_id=mine.id, gpus=2, gpu_type="h200",
                started_at=record.started_at, ended_at=record.ended_at,
                raw_gpu_hours=2 * seconds / 3600, factor=1.0, gpu_hours=2 * seconds / 3600,
            )
        )  # fmt: skip
        session.commit()
        ours = replace(
            record, name=f"fabriek-{mine.id}-capture", user="fab-hv-ann", account="hvclimate"
        )
        # A stranger's job whose name claims to be Fabriek's is not believed.
        fake = replace(ours, job_id=99)
        result = _ingest(session, [ours, fake])
        assert (result.fabriek, result.added) == (1, 1)
        session.refresh(mine)
        assert (mine.slurm_cluster, mine.slurm_job_id) == ("hvd", 7)
        assert mine.origin == "fabriek"
        (line,) = session.scalars(select(ChargeRow).where(ChargeRow.job_id == mine.id))
        assert line.gpus == 1
        assert line.raw_gpu_hours == pytest.approx(record.elapsed_s / 3600)
        again = _ingest(session, [ours, fake])
        assert (again.added, again.fabriek, again.corrected) == (0, 1, 0)
        assert len(session.scalars(select(ChargeRow).where(ChargeRow.job_id == mine.id)).all()) == 1


def test_records_from_slurmrestd_are_the_same_runs(sessions: sessionmaker[Session]) -> None:
    data = json.loads((DATA / "slurmdb_22.05_jobs.json").read_text())
    records = _recent(parse_slurmdb_jobs(data), "hve")
    with sessions() as session:
        result = _ingest(session, records)
        assert (result.added, result.unmatched) == (11, 1)
        audit = session.scalars(
            select(AuditRow).where(AuditRow.action == "harvest").order_by(AuditRow.seq.desc())
        ).first()
        assert audit is not None and audit.detail["added"] == 11


def test_running_records_wait_and_the_cursor_looks_back(sessions: sessionmaker[Session]) -> None:
    records = _sacct("hvf")
    running = replace(records[0], state="RUNNING", ended_at=None)
    with sessions() as session:
        result = _ingest(session, [running])
        assert (result.added, result.not_ended) == (0, 1)
        since = harvest.since(session, SITE)
        assert since is not None and since == NOW - harvest.LOOK_BACK
        assert _ingest(session, [records[0]]).added == 1


def test_the_public_dashboards_records_include_the_harvested_runs(
    sessions: sessionmaker[Session],
) -> None:
    records = _sacct("hvg")
    start, end = NOW - timedelta(days=40), NOW + timedelta(days=1)
    with sessions() as session:
        before = sum(r.gpu_seconds for r in monthly_records(session, start, end))
        _ingest(session, records)
        after = sum(r.gpu_seconds for r in monthly_records(session, start, end))
    # Allocated GPUs times the time each run held them, hour by hour (root's run is not ours).
    held = sum(
        r.gpus * (r.ended_at - r.started_at).total_seconds()
        for r in records
        if r.user != "root" and r.started_at is not None and r.ended_at is not None
    )
    assert after - before == pytest.approx(held)


def test_a_job_of_fabriek_without_the_engines_mark_is_found_by_its_handle(
    sessions: sessionmaker[Session],
) -> None:
    record = next(r for r in _sacct("hvh") if r.job_id == 1)  # named "wrap": no mark
    assert record.started_at is not None and record.ended_at is not None
    with sessions() as session:
        site = session.scalar(select(SiteRow.id).where(SiteRow.name == SITE))
        user = session.scalar(select(UserRow.id).where(UserRow.username == "maria"))
        project = session.scalar(select(ProjectRow.id).where(ProjectRow.name == "dutch-llm"))
        assert site is not None and user is not None and project is not None
        mine = JobRow(
            project_id=project, user_id=user, name="unmarked", gpus=1, nodes=1, cpus=1,
            memory_gb=1, time_limit_s=600, state="completed", site_id=site, handle="1",
            submitted_at=record.submitted_at - timedelta(seconds=2),
            started_at=record.started_at, ended_at=record.ended_at,
        )  # fmt: skip
        # The same Slurm id at this site, but submitted a day after Slurm's record: not it.
        later = JobRow(
            project_id=project, user_id=user, name="later", gpus=1, nodes=1, cpus=1,
            memory_gb=1, time_limit_s=600, state="running", site_id=site, handle="1",
            submitted_at=record.submitted_at + timedelta(days=1),
        )  # fmt: skip
        session.add_all([mine, later])
        session.commit()
        result = _ingest(session, [record])
        assert (result.fabriek, result.added) == (1, 0)
        session.refresh(mine)
        session.refresh(later)
        assert (mine.slurm_cluster, mine.slurm_job_id) == ("hvh", 1)
        assert later.slurm_job_id is None
