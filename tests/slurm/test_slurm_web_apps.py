"""Web apps and notebooks of jobs on a real Slurm site, opened through Fabriek's proxy, end
to end through the HTTP API (issue 18, point 3, on Slurm).

The site is a real Slurm 22.05 cluster of one node (so that two jobs share it); the control
plane drives it with the `slurm` engine. A job that declares a web port picks a free port on
its node and records it in the site's shared output folder; the control plane finds the node
(its batch host's NodeAddr) and the port, and its proxy reaches the app there: the owner gets
through (HTTP and a WebSocket), another user gets 403, nobody signed in 401. A real
JupyterLab runs as a notebook job on the site, a kernel cell runs through the proxy, and the
idle notebook is stopped.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete
from websockets.asyncio.client import connect

from fabriek.engines.slurm_web import WebPorts, recorded_port, web_file_name
from fabriek.services.demo.seed import demo_token
from fabriek.settings import Settings
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import JobRow, NodeGroupRow, SiteRow
from tests.conftest import problem_of
from tests.jobs_helpers import py, submit, wait_for
from tests.jupyter_install import Unavailable, ensure_jupyter
from tests.jupyter_kernel import channel_url, run_cell, start_kernel, wait_for_lab
from tests.own_loop import run_on_own_loop
from tests.servers import LiveServer, live_server, prepare, throwaway_database
from tests.slurm_harness import SlurmCluster, SlurmClusterError
from tests.test_web_apps import wait_until_served

pytestmark = pytest.mark.slurm

SITE = "webs"
APP = (Path(__file__).parents[1] / "web_app_echo.py").read_text()
# Short enough to watch a notebook be stopped, long enough to use it first.
IDLE_MINUTES = 0.5


@pytest.fixture(scope="module")
def cluster(slurm_ready: None) -> Iterator[SlurmCluster]:
    """One node of four GPUs: every job of the module runs on it."""
    site = SlurmCluster(SITE, gpu_type="h100", gpus=4)
    try:
        site.start()
    except SlurmClusterError as exc:
        site.remove()
        pytest.fail(f"the test cluster did not start:\n{exc}")
    try:
        yield site
    finally:
        site.stop()
        site.remove()


@pytest.fixture(scope="module")
def jupyter() -> Path | None:
    """The test's JupyterLab, or None where it cannot be had (the notebook test skips)."""
    try:
        return ensure_jupyter()
    except Unavailable:
        return None


@pytest.fixture(scope="module")
def server(
    cluster: SlurmCluster,
    shared_logs: Path,
    jupyter: Path | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveServer]:
    """A control plane whose one site is the cluster, with short-lived idle notebooks."""
    state = tmp_path_factory.mktemp("state")
    sites_file = state / "sites.toml"
    sites_file.write_text(
        f'[sites.{SITE}]\nengine = "slurm"\nslurm_conf = "{cluster.conf}"\n'
        f'log_dir = "{shared_logs}"\nweb_ports = [21000, 21999]\n'
        + (f'jupyter = "{jupyter}"\n' if jupyter else "")
    )
    with throwaway_database("sqlite", tmp_path_factory.mktemp("db")) as db:
        prepare(db)
        engine = make_engine(db)
        with make_sessions(engine)() as session:  # the demo's sites are not this one
            session.execute(delete(NodeGroupRow))
            session.execute(delete(SiteRow))
            session.commit()
        engine.dispose()
        settings = Settings(
            database_url=db, state_dir=state, sites_file=sites_file, dispatch_interval_s=0.3,
            housekeeping_interval_s=1.0, notebook_idle_minutes=IDLE_MINUTES,
        )  # fmt: skip
        with live_server(settings) as live, as_(live, "admin") as admin:
            body = {
                "name": SITE, "city": "Delft", "province": "Zuid-Holland", "engine": "slurm",
                "max_time_s": 3600,
                "node_groups": [{"name": "gpu", "gpu_type": "h100", "count": 1,
                                 "gpus_per_node": 4, "cpus_per_node": 8,
                                 "memory_gb_per_node": 15}],
            }  # fmt: skip
            created = admin.post("/api/v1/sites", json=body)
            assert created.status_code == 201, created.text
            yield live


def as_(server: LiveServer, username: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {demo_token(username).token}"} if username else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=60)


@pytest.fixture
def maria(server: LiveServer) -> Iterator[httpx.Client]:
    with as_(server, "maria") as c:
        yield c


def web_job(maria: httpx.Client) -> dict[str, Any]:
    """A job of maria's on the site serving the echo app, once it runs."""
    job = submit(maria, command=py(APP), web_port=8080, gpus=1, time_limit="10m")
    wait_for(maria, job["id"], {"running"}, timeout=120)
    return job


def slurm_id(server: LiveServer, job_id: int) -> str:
    """The job's Slurm id, as the store holds it."""
    engine = make_engine(server.settings.database_url)
    with make_sessions(engine)() as session:
        row = session.get(JobRow, job_id)
        assert row is not None and row.handle is not None
        handle = row.handle
    engine.dispose()
    return handle


def test_the_owner_reaches_a_slurm_jobs_app_through_the_proxy_and_no_one_else(
    server: LiveServer, maria: httpx.Client, shared_logs: Path
) -> None:
    job = web_job(maria)
    try:
        answer = wait_until_served(maria, job["id"])
        assert answer.status_code == 200, answer.text
        seen = answer.json()
        assert seen["path"] == f"/apps/{job['id']}/hello?x=1"
        assert seen["authorization"] is None and seen["cookie"] is None
        # The job recorded a port of the site's range on its node, as its own user.
        record = shared_logs / web_file_name(SITE, slurm_id(server, job["id"]))
        assert record.stat().st_uid == pwd.getpwnam("maria").pw_uid
        port = int(record.read_text())
        assert 21000 <= port <= 21999
        # Round the proxy, the app wants the job's secret.
        assert httpx.get(f"http://127.0.0.1:{port}/apps/{job['id']}/").status_code == 403
        path = f"/apps/{job['id']}/hello"
        with as_(server, "mo") as mo, as_(server, None) as nobody:
            assert "only to the person who started it" in str(
                problem_of(mo.get(path), 403)["detail"]
            )
            problem_of(nobody.get(path), 401)
        url = server.url.replace("http://", "ws://") + f"/apps/{job['id']}/ws"

        async def talk() -> list[str]:
            headers = {"Authorization": f"Bearer {demo_token('maria').token}"}
            async with connect(url, additional_headers=headers) as ws:
                got = []
                for text in ("hello", "x" * 70_000):
                    await ws.send(text)
                    got.append(str(await ws.recv()))
                return got

        assert run_on_own_loop(talk()) == ["echo: hello", "echo: " + "x" * 70_000]
    finally:
        maria.post(f"/api/v1/jobs/{job['id']}/cancel")


def test_two_web_jobs_on_one_node_get_ports_of_their_own(
    server: LiveServer, maria: httpx.Client, shared_logs: Path
) -> None:
    jobs = [web_job(maria), web_job(maria)]
    try:
        # Each app answers only its own job's secret: a 200 is the proxy reaching the right one.
        answers = [wait_until_served(maria, j["id"]) for j in jobs]
        assert [a.status_code for a in answers] == [200, 200]
        assert [a.json()["path"] for a in answers] == [f"/apps/{j['id']}/hello?x=1" for j in jobs]
        ports = {
            (shared_logs / web_file_name(SITE, slurm_id(server, j["id"]))).read_text() for j in jobs
        }
        assert len(ports) == 2
    finally:
        for j in jobs:
            maria.post(f"/api/v1/jobs/{j['id']}/cancel")


def test_a_port_file_another_user_planted_is_not_trusted(tmp_path: Path) -> None:
    ports = WebPorts(21000, 21999)
    tmp_path.chmod(0o1777)
    planted = tmp_path / web_file_name(SITE, "77")
    planted.write_text("21001\n")
    mo, maria = pwd.getpwnam("mo"), pwd.getpwnam("maria")
    os.chown(planted, mo.pw_uid, mo.pw_gid)
    assert recorded_port(planted, mo.pw_uid, ports) == 21001
    assert recorded_port(planted, maria.pw_uid, ports) is None  # not the job's user's
    planted.chmod(0o666)
    assert recorded_port(planted, mo.pw_uid, ports) is None  # anyone could write it
    planted.chmod(0o644)
    planted.write_text("80\n")
    assert recorded_port(planted, mo.pw_uid, ports) is None  # outside the site's range
    assert recorded_port(tmp_path / "missing.web", mo.pw_uid, ports) is None


def test_a_slurm_job_gets_its_owners_home_not_the_control_planes(maria: httpx.Client) -> None:
    """sbatch hands a job its own environment: run as root, the control plane's HOME would
    be the job's, where a notebook could keep nothing."""
    job = submit(maria, command=["sh", "-c", 'echo "$HOME"'], time_limit="5m")
    assert wait_for(maria, job["id"], timeout=120)["state"] == "completed"
    home = pwd.getpwnam("maria").pw_dir
    assert maria.get(f"/api/v1/jobs/{job['id']}/logs").text == f"{home}\n"


@pytest.fixture
def maria_home() -> Iterator[Path]:
    """A home of maria's own at the site (the test accounts have none), where Jupyter keeps
    its runtime files and JupyterLab opens."""
    home = Path(tempfile.mkdtemp(prefix="fabriek-web-home-", dir="/tmp"))
    who = pwd.getpwnam("maria")
    os.chown(home, who.pw_uid, who.pw_gid)
    yield home
    shutil.rmtree(home, ignore_errors=True)


def test_a_notebook_on_a_slurm_site_opens_runs_a_cell_and_is_stopped_when_idle(
    server: LiveServer, maria: httpx.Client, jupyter: Path | None, maria_home: Path
) -> None:
    if jupyter is None:
        pytest.skip("NOTEBOOK TEST SKIPPED: no JupyterLab (see tests/jupyter_install.py)")
    job = submit(maria, web_app="jupyterlab", gpus=2, time_limit="30m",
                 environment={"HOME": str(maria_home)})  # fmt: skip
    try:
        wait_for(maria, job["id"], {"running"}, timeout=120)
        page = wait_for_lab(maria, job["id"])
        assert page.status_code == 200 and "JupyterLab" in page.text
        prefix = f"/apps/{job['id']}/"
        kernel = start_kernel(maria, prefix)
        url = channel_url(server.url.replace("http://", "ws://"), prefix, kernel)
        headers = {"Authorization": f"Bearer {demo_token('maria').token}"}
        code = "import os; print('gpus=' + os.environ['CUDA_VISIBLE_DEVICES'])"
        printed = run_on_own_loop(run_cell(url, headers, code))
        gpus = re.fullmatch(r"gpus=([0-9,]+)\n", printed)
        assert gpus is not None and len(gpus.group(1).split(",")) == 2, printed
        with as_(server, "mo") as mo:
            problem_of(mo.get(f"{prefix}lab"), 403)
        # Nobody uses it now: the housekeeping stops it after IDLE_MINUTES.
        ended = wait_for(maria, job["id"], timeout=IDLE_MINUTES * 60 + 120)
    finally:
        maria.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert ended["state"] == "cancelled", ended
    assert ended["reason"].startswith("IdleStopped"), ended
