"""Where a job's web app listens on a site reached only through its REST API (the slurmrestd
engine, a real Slurm 22.05 site with its real slurmrestd): the job's batch host, at the
address the site's API gives for the node, and the port the job picked and recorded. A
second control plane process that never polled the job (one serving the proxy while another
leads the dispatching) finds it too, and an app that ended has no address."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fabriek.domain.job_states import JobState
from fabriek.domain.jobs import JobSpec
from fabriek.domain.web_apps import SECRET_HEADER
from fabriek.engines.base import EngineJob, LogStream
from fabriek.engines.slurm_web import WebPorts
from fabriek.engines.slurmrestd import JwtSigner, SlurmRestEngine
from fabriek.engines.web_apps import WebAddress
from tests.jobs_helpers import py
from tests.slurm.conftest import ALICE
from tests.slurm_harness import SlurmCluster, SlurmClusterError
from tests.slurmrestd_install import ensure_slurmrestd_installed

pytestmark = pytest.mark.slurm

APP = (Path(__file__).parents[1] / "web_app_echo.py").read_text()
PORTS = WebPorts(22000, 22999)


@pytest.fixture(scope="module")
def site(slurm_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    if reason := ensure_slurmrestd_installed():
        pytest.skip(reason)
    key = tmp_path_factory.mktemp("jwt") / "jwt_hs256.key"
    key.write_bytes(secrets.token_bytes(32))
    key.chmod(0o600)
    cluster = SlurmCluster("restweb", gpu_type="h100", gpus=2, jwt_key=key)
    try:
        cluster.start()
    except SlurmClusterError as error:
        cluster.remove()
        pytest.fail(f"the test site did not start:\n{error}")
    try:
        yield cluster
    finally:
        cluster.stop()
        cluster.remove()


def rest_engine(site: SlurmCluster, url: str, logs: Path) -> SlurmRestEngine:
    assert site.jwt_key is not None
    return SlurmRestEngine(
        "restweb", url, JwtSigner(site.jwt_key), logs, operator="root", tag_prefix="fbkweb",
        web_ports=PORTS,
    )  # fmt: skip


@pytest.fixture(scope="module")
def url(site: SlurmCluster) -> str:
    return site.start_rest()


def running(engine: SlurmRestEngine, job_id: int, handle: str) -> None:
    deadline = time.monotonic() + 60
    while engine.poll({job_id: handle})[job_id].state is not JobState.RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.2)


def served(
    engine: SlurmRestEngine, handle: str, address: WebAddress, secret: str
) -> httpx.Response:
    """The app's first answer, once it listens."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return httpx.get(f"{address.base}/hello", headers={SECRET_HEADER: secret})
        except httpx.TransportError:
            assert time.monotonic() < deadline, engine.read_log(handle, LogStream.STDERR)
            time.sleep(0.2)


def test_the_app_of_a_job_on_a_rest_site_is_found_on_its_node(
    site: SlurmCluster, url: str, shared_logs: Path
) -> None:
    engine = rest_engine(site, url, shared_logs)
    secret = secrets.token_hex(16)
    spec = JobSpec(name="app", command=tuple(py(APP)), web_port=8080, time_limit_s=600,
                   environment={"FABRIEK_WEB_SECRET": secret})  # fmt: skip
    handle = engine.submit(EngineJob(41, spec, owner=ALICE))
    try:
        running(engine, 41, handle)
        deadline = time.monotonic() + 60
        while (address := engine.web_address(handle)) is None:
            assert time.monotonic() < deadline, "the job recorded no port"
            time.sleep(0.2)
        # The node's address as the site's API gives it (the test nodes' NodeAddr).
        assert address.host == "127.0.0.1" and PORTS.holds(address.port)
        answer = served(engine, handle, address, secret)
        assert answer.status_code == 200 and answer.headers["x-app"] == "echo"
        # A process that never polled the job (it serves the proxy; another dispatches).
        other = rest_engine(site, url, shared_logs)
        try:
            assert other.web_address(handle) == address
        finally:
            other.close()
        assert engine.web_address("not-a-job") is None
    finally:
        engine.cancel(handle)
    deadline = time.monotonic() + 60
    while engine.poll({41: handle})[41].state is JobState.RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert engine.web_address(handle) is None  # ended: nothing to open
    engine.close()
