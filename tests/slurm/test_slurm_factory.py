"""A factory of two sites, each a real Slurm cluster, driven end to end through the HTTP API:
run, watch, logs, batch scripts, failure, time-out, cancel, a cluster that goes down and
comes back, and a restart of the control plane while Slurm keeps running its jobs."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete

from fabriek.services.demo.seed import demo_token
from fabriek.services.identity.tokens import installation_id
from fabriek.services.jobs.engine_registry import tag_prefix
from fabriek.settings import Settings
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import NodeGroupRow, SiteRow
from tests.jobs_helpers import py, submit, wait_for
from tests.servers import LiveServer, live_server, postgres_unavailable, prepare, throwaway_database
from tests.slurm_harness import SlurmCluster

pytestmark = pytest.mark.slurm

SITES = {
    "sitea": {"gpu_type": "h100", "count": 2, "gpus_per_node": 4},
    "siteb": {"gpu_type": "a100", "count": 1, "gpus_per_node": 2},
}


def site_body(name: str) -> dict[str, object]:
    g = SITES[name]
    return {
        "name": name, "city": "Delft", "province": "Zuid-Holland", "engine": "slurm",
        "max_time_s": 3600,
        "node_groups": [{"name": "gpu", **g, "cpus_per_node": 8, "memory_gb_per_node": 15}],
    }  # fmt: skip


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def factory_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The demo people and projects, but only the two Slurm sites."""
    if request.param == "postgresql" and (reason := postgres_unavailable()):
        pytest.skip(reason)
    with throwaway_database(request.param, tmp_path_factory.mktemp("db")) as url:
        prepare(url)
        engine = make_engine(url)
        with make_sessions(engine)() as session:
            session.execute(delete(NodeGroupRow))
            session.execute(delete(SiteRow))
            session.commit()
        engine.dispose()
        yield url


@pytest.fixture(scope="module")
def settings(
    factory_db: str,
    site_a: SlurmCluster,
    site_b: SlurmCluster,
    shared_logs: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Settings:
    state = tmp_path_factory.mktemp("state")
    sites_file = state / "sites.toml"
    # Jobs run as their owners, so their output goes to storage every user may write to.
    for site in SITES:
        (shared_logs / site).mkdir(exist_ok=True)
        (shared_logs / site).chmod(0o1777)
    sites_file.write_text(
        f'[sites.sitea]\nengine = "slurm"\nslurm_conf = "{site_a.conf}"\n'
        f'log_dir = "{shared_logs / "sitea"}"\n\n'
        f'[sites.siteb]\nengine = "slurm"\nslurm_conf = "{site_b.conf}"\n'
        f'log_dir = "{shared_logs / "siteb"}"\n'
    )
    settings = Settings(
        database_url=factory_db, state_dir=state, sites_file=sites_file, dispatch_interval_s=0.3
    )
    with live_server(settings.model_copy()) as live:
        headers = {"Authorization": f"Bearer {demo_token('admin').token}"}
        with httpx.Client(base_url=live.url, headers=headers) as admin:
            for name in SITES:
                created = admin.post("/api/v1/sites", json=site_body(name))
                assert created.status_code == 201, created.text
    return settings


@pytest.fixture
def server(settings: Settings) -> Iterator[LiveServer]:
    """One control plane per test, so that no two dispatchers ever share the store."""
    with live_server(settings.model_copy()) as live:
        yield live


@pytest.fixture
def maria(server: LiveServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {demo_token('maria').token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as c:
        yield c


def slurm_jobs(cluster: SlurmCluster, job_id: int, db_url: str) -> int:
    """How many Slurm jobs carry this Fabriek job's tag (of this store's installation)."""
    engine = make_engine(db_url)
    with make_sessions(engine)() as session:
        prefix = tag_prefix(installation_id(session))
    engine.dispose()
    out = subprocess.run(
        ["scontrol", "show", "job", "--oneliner"],
        env=cluster.client_env(),
        capture_output=True,
        text=True,
    ).stdout
    return sum(1 for line in out.splitlines() if f"Comment={prefix}:{job_id}" in line)


def test_jobs_go_to_the_site_with_their_gpus_and_run_on_slurm(
    maria: httpx.Client, site_a: SlurmCluster, factory_db: str
) -> None:
    long = submit(
        maria, command=py("import time; time.sleep(300)"), gpus=1, gpu_type="a100", time_limit="1"
    )
    h100 = submit(
        maria,
        command=["sh", "-c", "echo on $SLURM_CLUSTER_NAME gpus=$CUDA_VISIBLE_DEVICES"],
        gpus=2,
        gpu_type="h100",
    )
    fails = submit(maria, command=["sh", "-c", "echo oops >&2; exit 3"], gpus=1, gpu_type="h100")
    script = "#!/bin/bash\n#SBATCH --job-name=scripted\n#SBATCH --gres=gpu:a100:1\n#SBATCH --time=5\necho from a script\n"
    scripted = submit(maria, script=script)
    assert (
        scripted["name"] == "scripted"
        and scripted["gpu_type"] == "a100"
        and scripted["time_limit_s"] == 300
    )

    done = wait_for(maria, h100["id"], timeout=90)
    assert done["state"] == "completed" and done["site"] == "sitea" and done["exit_code"] == 0
    out = maria.get(f"/api/v1/jobs/{h100['id']}/logs").text
    assert out.startswith("on sitea gpus=") and len(out.strip().split("=")[-1].split(",")) == 2
    assert slurm_jobs(site_a, h100["id"], factory_db) == 1

    failed = wait_for(maria, fails["id"], timeout=90)
    assert failed["state"] == "failed" and failed["exit_code"] == 3
    assert maria.get(f"/api/v1/jobs/{fails['id']}/logs?stream=stderr").text == "oops\n"

    ran = wait_for(maria, scripted["id"], timeout=90)
    assert ran["state"] == "completed" and ran["site"] == "siteb"
    assert maria.get(f"/api/v1/jobs/{scripted['id']}/logs").text == "from a script\n"

    # The one-minute limit: Slurm's granularity is a minute, so this is the slow one.
    timed_out = wait_for(maria, long["id"], timeout=180)
    assert timed_out["state"] == "timed-out" and timed_out["site"] == "siteb"


def test_cancel_a_job_running_on_slurm(maria: httpx.Client) -> None:
    job = submit(maria, command=py("import time; time.sleep(300)"), gpus=1, gpu_type="h100")
    wait_for(maria, job["id"], {"running"}, timeout=90)
    maria.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert wait_for(maria, job["id"], timeout=60)["state"] == "cancelled"


def test_a_cluster_that_is_down_makes_jobs_wait_then_they_run(
    maria: httpx.Client, site_b: SlurmCluster
) -> None:
    site_b.stop_controller()
    try:
        job = submit(maria, command=["echo", "after the outage"], gpus=1, gpu_type="a100")
        deadline = time.monotonic() + 60
        while "SiteUnavailable" not in str(
            (seen := maria.get(f"/api/v1/jobs/{job['id']}").json())["reason"]
        ):
            assert seen["state"] in {"pending", "starting"}, seen
            assert time.monotonic() < deadline, seen
            time.sleep(0.2)
        assert seen["state"] == "pending" and "siteb" in seen["reason"]
    finally:
        site_b.start_controller()
    done = wait_for(maria, job["id"], timeout=120)
    assert done["state"] == "completed"
    assert maria.get(f"/api/v1/jobs/{job['id']}/logs").text == "after the outage\n"


def test_slurm_keeps_running_while_the_control_plane_restarts(
    settings: Settings, site_a: SlurmCluster, site_b: SlurmCluster
) -> None:
    # A second control plane on the same store takes over from a stopped first one
    # (the sites were registered by the tests before; each test has its own server).
    headers = {"Authorization": f"Bearer {demo_token('maria').token}"}
    with (
        live_server(settings.model_copy()) as first,
        httpx.Client(base_url=first.url, headers=headers, timeout=30) as c,
    ):
        job = submit(
            c, command=py("import time; time.sleep(4); print('survived')"), gpus=4, gpu_type="h100"
        )
        wait_for(c, job["id"], {"running"}, timeout=90)
    with (
        live_server(settings.model_copy()) as second,
        httpx.Client(base_url=second.url, headers=headers, timeout=30) as c,
    ):
        done = wait_for(c, job["id"], timeout=90)
        assert done["state"] == "completed"
        assert c.get(f"/api/v1/jobs/{job['id']}/logs").text == "survived\n"
    assert slurm_jobs(site_a, job["id"], settings.database_url) == 1


def test_logs_directory_is_per_site_and_output_is_its_users(shared_logs: Path) -> None:
    """Each site's output lands in its own folder of the shared storage, each file its
    job user's own (mode 0600), never the control plane's."""
    for site in SITES:
        outputs = list((shared_logs / site).glob("*.out"))
        assert outputs, site
        for output in outputs:
            assert output.stat().st_uid != 0 and output.stat().st_mode & 0o077 == 0
