"""Issue 20, point 4: no state lies across an outage of a site's Slurm controller or a restart
of the control plane. Through the HTTP API, against a real Slurm cluster:

a job cancelled while its controller is down is answered 202 (the cancel is pending, and
its reason says so); when the controller returns, the cancel reaches it before the job can
start: the job ends cancelled, never ran in Slurm, and nothing is charged.

A job is kept queued in Slurm, rather than started, by taking the cluster's partition down:
slurmctld does not keep that across its own restart, so a controller that comes back
starts the job within seconds unless the cancel got there first.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select

from fabriek.services.demo.seed import demo_token
from fabriek.settings import Settings
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import ChargeRow, JobRow, NodeGroupRow, SiteRow
from tests.jobs_helpers import submit, wait_for
from tests.servers import LiveServer, live_server, prepare, throwaway_database
from tests.slurm_harness import SlurmCluster

pytestmark = pytest.mark.slurm

SITE = {
    "name": "siteb", "city": "Delft", "province": "Zuid-Holland", "engine": "slurm",
    "max_time_s": 3600,
    "node_groups": [{"name": "gpu", "gpu_type": "a100", "count": 1, "gpus_per_node": 2,
                     "cpus_per_node": 8, "memory_gb_per_node": 15}],
}  # fmt: skip


@pytest.fixture(scope="module")
def settings(
    site_b: SlurmCluster, shared_logs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """The demo people and projects, with site B as the factory's only site."""
    with throwaway_database("sqlite", tmp_path_factory.mktemp("db")) as url:
        prepare(url)
        engine = make_engine(url)
        with make_sessions(engine)() as session:
            session.execute(delete(NodeGroupRow))
            session.execute(delete(SiteRow))
            session.commit()
        engine.dispose()
        state = tmp_path_factory.mktemp("state")
        logs = shared_logs / "outages"
        logs.mkdir(exist_ok=True)
        logs.chmod(0o1777)
        sites_file = state / "sites.toml"
        sites_file.write_text(
            f'[sites.siteb]\nengine = "slurm"\nslurm_conf = "{site_b.conf}"\nlog_dir = "{logs}"\n'
        )
        settings = Settings(
            database_url=url, state_dir=state, sites_file=sites_file, dispatch_interval_s=0.3
        )
        with live_server(settings.model_copy()) as live:
            headers = {"Authorization": f"Bearer {demo_token('admin').token}"}
            with httpx.Client(base_url=live.url, headers=headers) as admin:
                created = admin.post("/api/v1/sites", json=SITE)
                assert created.status_code == 201, created.text
        yield settings


@pytest.fixture
def server(settings: Settings) -> Iterator[LiveServer]:
    with live_server(settings.model_copy()) as live:
        yield live


def maria(server: LiveServer) -> httpx.Client:
    headers = {"Authorization": f"Bearer {demo_token('maria').token}"}
    return httpx.Client(base_url=server.url, headers=headers, timeout=30)


def partition(cluster: SlurmCluster, state: str) -> None:
    subprocess.run(
        ["scontrol", "update", "PartitionName=main", f"State={state}"],
        env=cluster.client_env(), check=True, capture_output=True,
    )  # fmt: skip


def slurm_job(cluster: SlurmCluster, handle: str) -> dict[str, str]:
    """`scontrol show job` of one job, as its Key=Value fields."""
    out = subprocess.run(
        ["scontrol", "show", "job", "--oneliner", handle],
        env=cluster.client_env(), capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return dict(re.findall(r"(\w+)=(\S*)", out))


def row_of(settings: Settings, job_id: int) -> tuple[str | None, list[tuple[Any, ...]]]:
    """The job's Slurm handle and its ledger lines (GPU-hours, from, until)."""
    engine = make_engine(settings.database_url)
    with make_sessions(engine)() as session:
        handle = session.scalar(select(JobRow.handle).where(JobRow.id == job_id))
        charged = [
            tuple(r)
            for r in session.execute(
                select(ChargeRow.gpu_hours, ChargeRow.started_at, ChargeRow.ended_at).where(
                    ChargeRow.job_id == job_id
                )
            )
        ]
    engine.dispose()
    return handle, charged


def queued_in_slurm(c: httpx.Client, job_id: int) -> dict[str, Any]:
    """Wait until Slurm holds the job in its queue (the partition is down)."""
    deadline = time.monotonic() + 60
    while "queued on the cluster" not in str(
        (seen := c.get(f"/api/v1/jobs/{job_id}").json())["reason"]
    ):
        assert seen["state"] == "starting" or seen["state"] == "pending", seen
        assert time.monotonic() < deadline, seen
        time.sleep(0.1)
    found: dict[str, Any] = seen
    return found


def events(c: httpx.Client, job_id: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = c.get(f"/api/v1/jobs/{job_id}/events").json()
    return found


def test_a_cancel_while_the_controller_is_down_reaches_it_before_the_job_can_start(
    server: LiveServer, settings: Settings, site_b: SlurmCluster
) -> None:
    partition(site_b, "DOWN")
    with maria(server) as c:
        job = submit(c, command=["echo", "this must never run"], gpus=1, gpu_type="a100")
        queued_in_slurm(c, job["id"])
        handle, _ = row_of(settings, job["id"])
        assert handle is not None
        site_b.stop_controller()
        try:
            answer = c.post(f"/api/v1/jobs/{job['id']}/cancel")
            assert answer.status_code == 202, answer.text
            pending = answer.json()
            assert pending["state"] == "starting"
            assert "cancel requested by maria: pending until siteb" in pending["reason"]
            # Long enough for the dispatcher to give up on the site for a while.
            time.sleep(12)
            assert c.get(f"/api/v1/jobs/{job['id']}").json()["state"] == "starting"
        finally:
            site_b.start_controller()  # the partition is up again: Slurm may start the job
        done = wait_for(c, job["id"], timeout=90)
        assert done["state"] == "cancelled", done
        assert done["gpu_hours"] == 0
        states = [e["to_state"] for e in events(c, job["id"])]
        assert "running" not in states, states
    seen = slurm_job(site_b, handle)
    assert seen["JobState"] == "CANCELLED" and seen["RunTime"] == "00:00:00", seen
    assert not Path(seen["StdOut"]).exists(), seen["StdOut"]
    assert [c[0] for c in row_of(settings, job["id"])[1]] in ([], [0.0])
