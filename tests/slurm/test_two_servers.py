"""Two control-plane servers (issue 20, point 8), end to end: two `fabriek serve` processes
with separate state folders share one PostgreSQL database and one real Slurm cluster. Jobs
stream in through both; the leader (the dispatcher's lease holder) is killed with SIGKILL
mid-stream; the other takes over, and every job runs once: one Slurm job per Fabriek job,
one ledger line, one start and one end. Both servers answer the API throughout (the killed
one until it is killed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete, func, select

from fabriek.services.demo.seed import demo_token
from fabriek.services.identity.tokens import installation_id
from fabriek.services.jobs.engine_registry import tag_prefix
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import ChargeRow, JobEventRow, JobRow, NodeGroupRow, SiteRow
from tests.jobs_helpers import wait_for
from tests.servers import free_port, postgres_unavailable, prepare, throwaway_database
from tests.slurm.test_slurm_factory import site_body
from tests.slurm_harness import SlurmCluster

pytestmark = pytest.mark.slurm

ADMIN = {"Authorization": f"Bearer {demo_token('admin').token}"}
MARIA = {"Authorization": f"Bearer {demo_token('maria').token}"}
JOBS = 30
KILL_AFTER = 12


@pytest.fixture
def database(tmp_path: Path) -> Iterator[str]:
    if reason := postgres_unavailable():
        pytest.skip(reason)
    with throwaway_database("postgresql", tmp_path) as url:
        prepare(url)
        engine = make_engine(url)
        with make_sessions(engine)() as session:  # only the Slurm site
            session.execute(delete(NodeGroupRow))
            session.execute(delete(SiteRow))
            session.commit()
        engine.dispose()
        yield url


def serve(url: str, state: Path, sites_file: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`fabriek serve` with a state folder of its own, once it answers; its output is kept
    in the state folder, for when the test fails."""
    port = free_port()
    env = {
        **os.environ,
        "FABRIEK_DATABASE_URL": url,
        "FABRIEK_STATE_DIR": str(state),
        "FABRIEK_SITES_FILE": str(sites_file),
        "FABRIEK_DISPATCH_INTERVAL_S": "0.3",
    }
    state.mkdir(parents=True, exist_ok=True)
    log = (state / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fabriek.main", "serve", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline and proc.poll() is None, (
            state / "serve.log"
        ).read_text()
        time.sleep(0.1)


def dispatcher_of(base: str) -> tuple[str | None, str | None]:
    """(the dispatcher's holder, the answering server's own name), as `base` reports."""
    body = httpx.get(f"{base}/api/v1/control-plane", headers=ADMIN, timeout=5).json()
    holder = next((r["holder"] for r in body["roles"] if r["role"] == "dispatcher"), None)
    return holder, body["server"]


def slurm_jobs_by_tag(cluster: SlurmCluster, db_url: str) -> Counter[int]:
    """How many Slurm jobs carry each Fabriek job's tag (of this store's installation)."""
    engine = make_engine(db_url)
    with make_sessions(engine)() as session:
        prefix = tag_prefix(installation_id(session))
    engine.dispose()
    out = subprocess.run(
        ["scontrol", "show", "job", "--oneliner"],
        env=cluster.client_env(), capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    tags = (word.removeprefix("Comment=") for word in out.split() if word.startswith("Comment="))
    return Counter(int(t.split(":")[1]) for t in tags if t.startswith(f"{prefix}:"))


class Watch(threading.Thread):
    """Asks both servers for a page of jobs every quarter second: what each answered."""

    def __init__(self, bases: list[str]) -> None:
        super().__init__(daemon=True)
        self.bases = bases
        self.answers: list[tuple[str, float, int | str]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(headers=MARIA, timeout=10) as c:
            while not self.stop.is_set():
                for base in self.bases:
                    at = time.monotonic()
                    try:
                        status: int | str = c.get(f"{base}/api/v1/jobs?limit=5").status_code
                    except httpx.TransportError as exc:
                        status = type(exc).__name__
                    self.answers.append((base, at, status))
                self.stop.wait(0.25)


def test_the_leader_killed_mid_stream_another_takes_over_and_nothing_runs_twice(
    database: str, site_a: SlurmCluster, shared_logs: Path, tmp_path: Path
) -> None:
    (shared_logs / "sitea").mkdir(exist_ok=True)
    (shared_logs / "sitea").chmod(0o1777)
    sites_file = tmp_path / "sites.toml"
    sites_file.write_text(
        f'[sites.sitea]\nengine = "slurm"\nslurm_conf = "{site_a.conf}"\n'
        f'log_dir = "{shared_logs / "sitea"}"\n'
    )
    first, a = serve(database, tmp_path / "state-a", sites_file)
    created = httpx.post(f"{a}/api/v1/sites", json=site_body("sitea"), headers=ADMIN)
    assert created.status_code == 201, created.text
    second, b = serve(database, tmp_path / "state-b", sites_file)
    procs = {a: first, b: second}
    try:
        holder, _ = dispatcher_of(a)
        leader = next(base for base in (a, b) if dispatcher_of(base)[1] == holder)
        survivor = b if leader == a else a
        watch = Watch([a, b])
        watch.start()
        acked: list[int] = []
        killed_at = None
        with httpx.Client(headers=MARIA, timeout=30) as c:
            for i in range(JOBS):
                if i == KILL_AFTER:
                    procs[leader].send_signal(signal.SIGKILL)
                    killed_at = time.monotonic()
                target = (a, b)[i % 2] if killed_at is None else survivor
                body = {
                    "command": ["sh", "-c", f"echo job {i} on $SLURM_CLUSTER_NAME; sleep 1"],
                    "gpus": 1, "gpu_type": "h100",
                }  # fmt: skip
                response = c.post(f"{target}/api/v1/jobs", json=body)
                assert response.status_code == 201, response.text
                acked.append(response.json()["id"])
                if killed_at is not None and i == KILL_AFTER:
                    # Measured: how long until the survivor holds the dispatcher's role.
                    while dispatcher_of(survivor)[0] != dispatcher_of(survivor)[1]:
                        assert time.monotonic() - killed_at < 30, "no takeover in 30 s"
                        time.sleep(0.1)
                    took = time.monotonic() - killed_at
                    print(f"\ntakeover: the survivor dispatches {took:.1f} s after the kill")
                time.sleep(0.2)
        with httpx.Client(base_url=survivor, headers=MARIA, timeout=30) as c:
            done = [wait_for(c, j, timeout=240) for j in acked]
        watch.stop.set()
        watch.join(10)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)

    assert [j["state"] for j in done] == ["completed"] * JOBS, [
        (j["id"], j["state"], j["reason"]) for j in done if j["state"] != "completed"
    ]
    # Each job ran once: one Slurm job with its tag, one handle, one start, one end, and
    # one ledger line.
    assert slurm_jobs_by_tag(site_a, database) == dict.fromkeys(acked, 1)
    engine = make_engine(database)
    with make_sessions(engine)() as session:
        handles = session.scalars(select(JobRow.handle).where(JobRow.id.in_(acked))).all()
        events: Counter[tuple[int, str]] = Counter(
            (job_id, state)
            for job_id, state in session.execute(
                select(JobEventRow.job_id, JobEventRow.to_state).where(
                    JobEventRow.job_id.in_(acked)
                )
            )
        )
        charges = dict(
            session.execute(
                select(ChargeRow.job_id, func.count())
                .where(ChargeRow.job_id.in_(acked))
                .group_by(ChargeRow.job_id)
            ).all()
        )
    engine.dispose()
    assert len(set(handles)) == JOBS and None not in handles
    for j in acked:
        # (A run too short to be seen running may go from starting to completed.)
        assert events[(j, "running")] <= 1 and events[(j, "completed")] == 1, (j, events)
        assert events[(j, "starting")] == 1, (j, events)
    assert charges == dict.fromkeys(acked, 1)
    # Both answered throughout: the survivor always, the killed one until its kill.
    assert watch.answers and killed_at is not None
    failed = [
        (base, status)
        for base, at, status in watch.answers
        if status != 200 and (base == survivor or at < killed_at - 0.5)
    ]
    assert failed == []
    assert any(base == survivor for base, *_ in watch.answers)
