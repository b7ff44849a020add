"""A submission whose answer is lost (the cluster took the job, the connection broke) keeps
its job at that site, to be sent again there, never placed elsewhere: it runs once."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from fabriek.domain.job_states import JobState
from fabriek.domain.jobs import JobDraft
from fabriek.engines.base import (
    Engine,
    EngineJob,
    EngineUnsure,
    LogStream,
    Observation,
)
from fabriek.services.demo.seed import demo_token
from fabriek.services.identity.tokens import authenticate
from fabriek.services.jobs import submit_job
from fabriek.services.jobs.cancels import UNCONFIRMED
from fabriek.services.jobs.dispatch import Dispatcher
from fabriek.services.jobs.engine_registry import EngineRegistry
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import JobEventRow, JobRow
from tests.servers import prepare, throwaway_database


class StandInLostAnswer:
    """A real engine whose first submission's answer is lost: the job is started, and the
    caller hears only that the connection broke (what a partner factory killed while
    answering, or a network cut at that moment, looks like)."""

    def __init__(self, real: Engine, lost: set[str]) -> None:
        self.real = real
        self.name = real.name
        self.lost = lost

    def submit(self, job: EngineJob) -> str:
        handle = self.real.submit(job)
        if "first" not in self.lost:
            self.lost.add("first")
            raise EngineUnsure(f"{self.name} does not answer: ReadError")
        return handle

    def poll(self, handles: Mapping[int, str]) -> dict[int, Observation]:
        return self.real.poll(handles)

    def cancel(self, handle: str) -> None:
        self.real.cancel(handle)

    def read_log(
        self, handle: str, stream: LogStream, offset: int = 0, limit: int = 1 << 20
    ) -> bytes:
        return self.real.read_log(handle, stream, offset, limit)

    def known_jobs(self) -> dict[int, str]:
        return self.real.known_jobs()


class LosingRegistry(EngineRegistry):
    """The sites' real engines, each behind `StandInLostAnswer`."""

    lost: set[str]

    def _build(self, site: str, site_gpus: int) -> Engine:
        return StandInLostAnswer(super()._build(site, site_gpus), self.lost)


def test_a_lost_answer_keeps_the_job_at_its_site_and_it_runs_once(tmp_path: Path) -> None:
    with throwaway_database("sqlite", tmp_path) as url:
        prepare(url)
        engine = make_engine(url)
        sessions = make_sessions(engine)
        now = datetime.now(UTC)
        with sessions() as session:
            maria = authenticate(session, demo_token("maria").token, now)
            job = submit_job(
                session, maria,
                JobDraft(project="dutch-llm", command=["sh", "-c", "echo ran >> ran"]), now,
            )  # fmt: skip
        registry = LosingRegistry(tmp_path / "state", {}, default_gpus=4)
        registry.lost = set()
        dispatcher = Dispatcher(sessions, registry, lambda: datetime.now(UTC))
        try:
            dispatcher.cycle(housekeep=False)
            with sessions() as session:
                row = session.get(JobRow, job.id)
                assert row is not None and row.site_id is not None
                site_id = row.site_id
                assert row.state == JobState.STARTING and row.handle is None
                assert (row.reason or "").startswith(UNCONFIRMED)
            deadline = time.monotonic() + 60
            while True:
                dispatcher.cycle(housekeep=False)
                with sessions() as session:
                    row = session.get(JobRow, job.id)
                    assert row is not None
                    # Never placed anywhere else meanwhile.
                    assert row.site_id == site_id and row.state != JobState.PENDING
                    if row.state == JobState.COMPLETED:
                        break
                assert time.monotonic() < deadline, (row.state, row.reason)
                time.sleep(0.2)
        finally:
            dispatcher.close()
        with sessions() as session:
            states = session.scalars(
                select(JobEventRow.to_state).where(JobEventRow.job_id == job.id)
                .order_by(JobEventRow.id)
            ).all()  # fmt: skip
        engine.dispose()
        assert list(states) == ["pending", "starting", "running", "completed"]
        runs = [
            line
            for ran in (tmp_path / "state").glob(f"engines/*/*/{job.id}/work/ran")
            for line in ran.read_text().split()
        ]
        assert runs == ["ran"]


def test_a_cancel_while_unconfirmed_reaches_the_cluster(tmp_path: Path) -> None:
    """Cancelled while its submission is unconfirmed, the job is not just ended here (the
    cluster may run it): it is confirmed there, then cancelled there."""
    with throwaway_database("sqlite", tmp_path) as url:
        prepare(url)
        engine = make_engine(url)
        sessions = make_sessions(engine)
        now = datetime.now(UTC)
        with sessions() as session:
            maria = authenticate(session, demo_token("maria").token, now)
            job = submit_job(
                session, maria,
                JobDraft(project="dutch-llm", command=["sh", "-c", "echo ran >> ran; sleep 60"]),
                now,
            )  # fmt: skip
        registry = LosingRegistry(tmp_path / "state", {}, default_gpus=4)
        registry.lost = set()
        dispatcher = Dispatcher(sessions, registry, lambda: datetime.now(UTC))
        try:
            dispatcher.cycle(housekeep=False)
            with sessions() as session:
                row = session.get(JobRow, job.id)
                assert row is not None and (row.reason or "").startswith(UNCONFIRMED)
                row.cancel_requested = True  # what the API's cancel does
                session.commit()
            deadline = time.monotonic() + 60
            while True:
                dispatcher.cycle(housekeep=False)
                with sessions() as session:
                    row = session.get(JobRow, job.id)
                    assert row is not None
                    if row.state == JobState.CANCELLED:
                        break
                assert time.monotonic() < deadline, (row.state, row.reason)
                time.sleep(0.2)
            assert row.handle is not None  # the cluster's job was found and stopped
        finally:
            dispatcher.close()
        engine.dispose()
        [ran] = list((tmp_path / "state").glob(f"engines/*/*/{job.id}/work/ran"))
        assert ran.read_text().split() == ["ran"]
