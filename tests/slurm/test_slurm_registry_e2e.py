"""End to end through the HTTP API on a real Slurm site: an image pushed to the factory's
registry with a Fabriek token runs as the job's user under rootless podman, pinned by the
digest recorded on the job, with the job's GPUs visible inside; another project's member
cannot use it."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete

from fabriek.services.demo.seed import demo_token
from fabriek.settings import Settings
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import NodeGroupRow, SiteRow
from tests.conftest import problem_of
from tests.container_images import (
    PODMAN_GLOBAL,
    PODMAN_RUN,
    busybox_image,
    ensure_subordinate_ids,
    podman,
)
from tests.jobs_helpers import wait_for
from tests.registry_harness import Registry, ensure_registry, running_registry
from tests.servers import LiveServer, free_port, live_server, prepare, throwaway_database
from tests.slurm.test_slurm_containers import pause_processes
from tests.slurm_harness import SlurmCluster

pytestmark = pytest.mark.slurm


def _toml(words: list[str]) -> str:
    return "[" + ", ".join(f'"{w}"' for w in words) + "]"


@pytest.fixture(scope="module")
def world(
    site_b: SlurmCluster, shared_logs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, Registry]]:
    """Fabriek with one Slurm site (site B, rootless podman) and a real registry."""
    if (reason := ensure_registry()) is not None:
        pytest.skip(f"REGISTRY NOT AVAILABLE: {reason}")
    ensure_subordinate_ids("maria", 1_100_000_000)
    tmp = tmp_path_factory.mktemp("slurm-registry")
    podman_dir = Path(tempfile.mkdtemp(prefix="fabriek-podman-", dir="/tmp"))
    podman_dir.chmod(0o1777)
    (podman_dir / "home").mkdir(mode=0o1777)
    (podman_dir / "home").chmod(0o1777)
    mine = f"{podman_dir}/podman-${{USER}}"
    (shared_logs / "siteb").mkdir(exist_ok=True)
    (shared_logs / "siteb").chmod(0o1777)
    sites = tmp / "sites.toml"
    sites.write_text(
        f'[sites.siteb]\nengine = "slurm"\nslurm_conf = "{site_b.conf}"\n'
        f'log_dir = "{shared_logs / "siteb"}"\ncontainer_runtime = "podman"\n'
        "container_global_options = "
        f"{_toml([*PODMAN_GLOBAL, '--root', f'{mine}/root', '--runroot', f'{mine}/run'])}\n"
        f"container_run_options = {_toml([*PODMAN_RUN, '--tls-verify=false'])}\n"
        f'container_environment = {{ HOME = "{podman_dir}/home" }}\n'
    )
    address = f"127.0.0.1:{free_port()}"
    maria_uid = pwd.getpwnam("maria").pw_uid
    before = pause_processes(maria_uid)
    with throwaway_database("sqlite", tmp) as url:
        prepare(url)
        engine = make_engine(url)
        with make_sessions(engine)() as session:
            session.execute(delete(NodeGroupRow))
            session.execute(delete(SiteRow))
            session.commit()
        engine.dispose()
        settings = Settings(
            database_url=url, state_dir=tmp / "state", sites_file=sites, dispatch_interval_s=0.3,
            registry=address, registry_insecure=True,
        )  # fmt: skip
        with live_server(settings) as live:
            admin = {"Authorization": f"Bearer {demo_token('admin').token}"}
            made = httpx.post(f"{live.url}/api/v1/sites", headers=admin, json={
                "name": "siteb", "city": "Delft", "province": "Zuid-Holland", "engine": "slurm",
                "max_time_s": 3600,
                "node_groups": [{"name": "gpu", "gpu_type": "a100", "count": 1,
                                 "gpus_per_node": 2, "cpus_per_node": 8,
                                 "memory_gb_per_node": 15}],
            })  # fmt: skip
            assert made.status_code == 201, made.text
            with running_registry(address, live.url, settings.state_dir, tmp / "reg") as reg:
                yield live, reg
    for pid in pause_processes(maria_uid) - before:
        os.kill(pid, 9)
    shutil.rmtree(podman_dir, ignore_errors=True)


def test_an_image_from_the_factorys_registry_runs_on_a_slurm_site_with_its_gpus(
    world: tuple[LiveServer, Registry], tmp_path: Path
) -> None:
    server, registry = world
    maria = demo_token("maria").token
    digest_file = tmp_path / "digest"
    pushed = podman(
        "push", "--tls-verify=false", "--creds", f"maria:{maria}", "--digestfile",
        str(digest_file), busybox_image(), f"{registry.address}/dutch-llm/busybox:slurm",
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr.decode()[-800:]
    digest = digest_file.read_text().strip()
    script = "id -un; echo gpus=$CUDA_VISIBLE_DEVICES; ls /bin/busybox"
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {maria}"}, timeout=30
    ) as api:
        made = api.post("/api/v1/jobs", json={
            "project": "dutch-llm", "container_image": "dutch-llm/busybox:slurm", "gpus": 1,
            "command": ["sh", "-c", script], "time_limit": 120,
        })  # fmt: skip
        assert made.status_code == 201, made.text
        assert made.json()["image_digest"] == digest
        done = wait_for(api, made.json()["id"], timeout=180)
        out = api.get(f"/api/v1/jobs/{done['id']}/logs").text
        assert done["state"] == "completed", (done, out)
    lines = out.splitlines()
    assert "/bin/busybox" in lines
    assert any(line.startswith("gpus=") and line != "gpus=" for line in lines), out
    with httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {demo_token('mo').token}"},
        timeout=30,
    ) as mo:
        problem_of(
            mo.post("/api/v1/jobs", json={
                "container_image": "dutch-llm/busybox:slurm", "command": ["true"],
            }),
            404,
        )  # fmt: skip
