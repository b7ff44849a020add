"""A restart, or a `kill -9`, of the control plane loses no job and runs none twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from fabriek.services.demo.seed import demo_token
from fabriek.settings import Settings
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import JobEventRow
from tests.jobs_helpers import py, submit, wait_for
from tests.servers import (
    free_port,
    live_server,
    postgres_unavailable,
    prepare,
    spawn_serve,
    throwaway_database,
)

TOKEN = demo_token("maria").token


def settings_for(url: str, state: Path) -> Settings:
    return Settings(database_url=url, state_dir=state, dispatch_interval_s=0.2)


@pytest.fixture(params=["sqlite", "postgresql"])
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    if request.param == "postgresql" and (reason := postgres_unavailable()):
        pytest.skip(reason)
    with throwaway_database(request.param, tmp_path) as url:
        prepare(url)
        yield url, tmp_path / "state"


def client_for(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)


def terminal_events(db_url: str, job_id: int) -> list[str]:
    engine = make_engine(db_url)
    with make_sessions(engine)() as session:
        rows = session.scalars(
            select(JobEventRow.to_state).where(JobEventRow.job_id == job_id)
        ).all()
    engine.dispose()
    return [s for s in rows if s in {"completed", "failed", "cancelled", "timed-out", "lost"}]


def test_a_job_finishing_while_the_control_plane_is_down_ends_once(
    factory: tuple[str, Path],
) -> None:
    url, state = factory
    with live_server(settings_for(url, state)) as a, client_for(a.url) as c:
        job = submit(c, command=py("import time; time.sleep(2); print('finished alone')"))
        wait_for(c, job["id"], {"running"})
    time.sleep(3)  # the job ends while no control plane watches
    with live_server(settings_for(url, state)) as b, client_for(b.url) as c:
        done = wait_for(c, job["id"])
        assert done["state"] == "completed" and done["exit_code"] == 0
        assert c.get(f"/api/v1/jobs/{job['id']}/logs").text == "finished alone\n"
        running = submit(c, command=py("import time; time.sleep(30)"))
        wait_for(c, running["id"], {"running"})
    assert terminal_events(url, job["id"]) == ["completed"]
    # A job still running across a restart is re-adopted, not restarted or lost.
    with live_server(settings_for(url, state)) as b2, client_for(b2.url) as c:
        again = c.get(f"/api/v1/jobs/{running['id']}").json()
        assert again["state"] == "running"
        c.post(f"/api/v1/jobs/{running['id']}/cancel")
        assert wait_for(c, running["id"])["state"] == "cancelled"


def test_a_job_that_died_unseen_is_lost_with_a_reason(factory: tuple[str, Path]) -> None:
    url, state = factory
    with live_server(settings_for(url, state)) as a, client_for(a.url) as c:
        job = submit(c, command=py("import time; time.sleep(120)"))
        wait_for(c, job["id"], {"running"})
    (runner,) = state.glob(f"engines/*/amsterdam/{job['id']}/runner.json")
    runner_pid = int(json.loads(runner.read_text())["pid"])
    os.kill(runner_pid, signal.SIGKILL)
    time.sleep(0.5)
    with live_server(settings_for(url, state)) as b, client_for(b.url) as c:
        lost = wait_for(c, job["id"])
        assert lost["state"] == "lost"
        assert "disappeared" in lost["reason"]


def test_kill_minus_nine_while_200_jobs_stream_through(tmp_path: Path) -> None:
    """The control plane is killed with SIGKILL mid-stream; after a restart every job ends
    exactly once, and each ran exactly once."""
    with throwaway_database("sqlite", tmp_path) as url:
        prepare(url)
        state = tmp_path / "state"
        port = free_port()
        env = {**os.environ, "FABRIEK_DATABASE_URL": url, "FABRIEK_STATE_DIR": str(state),
               "FABRIEK_PORT": str(port), "FABRIEK_DISPATCH_INTERVAL_S": "0.2"}  # fmt: skip
        base = f"http://127.0.0.1:{port}"

        def start() -> subprocess.Popen[bytes]:
            return spawn_serve(env, port)

        # Each run leaves a line in the job's own workspace (a job sees nothing else).
        record = ["sh", "-c", "echo $FABRIEK_JOB_ID >> ran"]
        acked: list[int] = []
        server = start()
        killed = threading.Event()

        def killer() -> None:
            while len(acked) < 100:
                time.sleep(0.01)
            server.send_signal(signal.SIGKILL)
            killed.set()

        threading.Thread(target=killer, daemon=True).start()
        with client_for(base) as c:
            while not killed.is_set() and len(acked) < 200:
                try:
                    acked.append(submit(c, command=record)["id"])
                except (httpx.TransportError, AssertionError):
                    break
        killed.wait(30)
        server.wait(10)
        server = start()
        try:
            with client_for(base) as c:
                while len(acked) < 200:
                    acked.append(submit(c, command=record)["id"])
                deadline = time.monotonic() + 180
                while True:
                    page = c.get("/api/v1/jobs", params={"limit": 1000}).json()
                    states = Counter(j["state"] for j in page["items"])
                    if states["completed"] == page["total"]:
                        break
                    assert time.monotonic() < deadline, states
                    time.sleep(0.5)
                assert page["total"] >= 200 and set(acked) <= {j["id"] for j in page["items"]}
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(20)
        ids = [j["id"] for j in page["items"]]
        runs = Counter(
            int(line)
            for ran in state.glob("engines/*/*/*/work/ran")
            for line in ran.read_text().split()
        )
        assert all(runs[i] == 1 for i in ids), [i for i in ids if runs[i] != 1]
        assert all(terminal_events(url, i) == ["completed"] for i in ids)


def test_several_api_processes_share_one_dispatcher(tmp_path: Path) -> None:
    with throwaway_database("sqlite", tmp_path) as url:
        prepare(url)
        port = free_port()
        env = {**os.environ, "FABRIEK_DATABASE_URL": url, "FABRIEK_STATE_DIR": str(tmp_path / "s"),
               "FABRIEK_DISPATCH_INTERVAL_S": "0.2"}  # fmt: skip
        proc = spawn_serve(env, port, "--workers", "2")
        base = f"http://127.0.0.1:{port}"
        try:
            with client_for(base) as c:
                jobs = [submit(c, command=["echo", str(i)]) for i in range(6)]
                for i, job in enumerate(jobs):
                    assert wait_for(c, job["id"])["state"] == "completed"
                    assert c.get(f"/api/v1/jobs/{job['id']}/logs").text == f"{i}\n"
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        assert all(terminal_events(url, j["id"]) == ["completed"] for j in jobs)


def events_of(db_url: str, job_id: int) -> list[str]:
    engine = make_engine(db_url)
    with make_sessions(engine)() as session:
        rows = session.scalars(
            select(JobEventRow.to_state)
            .where(JobEventRow.job_id == job_id)
            .order_by(JobEventRow.id)
        ).all()
    engine.dispose()
    return list(rows)


def test_a_job_that_ran_while_no_one_watched_has_its_running_event(
    factory: tuple[str, Path],
) -> None:
    """Issue 20, point 4b: a job launched just before a restart, which ran and ended while
    the control plane was down, went from `starting` straight to `completed`."""
    url, state = factory
    # A dispatcher that looks again only every minute: the job stays `starting` in the
    # store while it runs (the submission wakes it once, to launch).
    slow = settings_for(url, state).model_copy(update={"dispatch_interval_s": 60.0})
    with live_server(slow) as a, client_for(a.url) as c:
        job = submit(c, command=py("print('ran unseen')"))
        seen = wait_for(c, job["id"], {"starting", "running"})
        assert seen["state"] == "starting", seen
        deadline = time.monotonic() + 30
        while not list(state.glob(f"engines/*/*/{job['id']}/status.json")):
            assert time.monotonic() < deadline, "the job never ended"
            time.sleep(0.1)
    with live_server(settings_for(url, state)) as b, client_for(b.url) as c:
        done = wait_for(c, job["id"])
        assert done["state"] == "completed" and done["exit_code"] == 0
        assert c.get(f"/api/v1/jobs/{job['id']}/logs").text == "ran unseen\n"
    assert events_of(url, job["id"])[-3:] == ["starting", "running", "completed"]
