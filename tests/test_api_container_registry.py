"""A job in an image of the factory's own registry runs on the local engine: the control
plane pins it by digest and hands the engine a pull credential for the job's project, which
podman reads from the job's private auth file; the job runs inside, and says what it ran."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fabriek.services.demo.seed import SITES, demo_token
from fabriek.settings import Settings
from tests.container_images import busybox_variant, podman, podman_sites_file
from tests.jobs_helpers import wait_for
from tests.servers import LiveServer, free_port, live_server, prepare, throwaway_database

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local engine runs podman as root")
# The registry's harness belongs to the registry's tests; without it these are skipped.
harness = pytest.importorskip("tests.registry_harness")
Registry = harness.Registry


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Registry]]:
    """A Fabriek whose registry is a real one on loopback (plain HTTP), and whose every
    demo site runs images with this machine's podman."""
    if (reason := harness.ensure_registry()) is not None:
        pytest.skip(f"REGISTRY NOT AVAILABLE: {reason}")
    tmp = tmp_path_factory.mktemp("images")
    address = f"127.0.0.1:{free_port()}"
    names = [s.name for s in SITES]
    sites = podman_sites_file(tmp / "sites.toml", names, set(names), ("--tls-verify=false",))
    with throwaway_database("sqlite", tmp) as url:
        prepare(url)
        settings = Settings(
            database_url=url, state_dir=tmp / "state", dispatch_interval_s=0.2,
            registry=address, registry_insecure=True, sites_file=sites,
        )  # fmt: skip
        with (
            live_server(settings) as live,
            harness.running_registry(
                address, live.url, settings.state_dir, tmp / "registry"
            ) as registry,
        ):
            yield live, registry


def test_a_job_runs_in_its_projects_image_pulled_from_the_factorys_registry(
    world: tuple[LiveServer, Registry], tmp_path: Path
) -> None:
    server, registry = world
    maria = demo_token("maria").token
    # An image of its own digest, pushed and then removed here: the job must pull it.
    local = busybox_variant(uuid.uuid4().hex[:12])
    remote = f"{registry.address}/dutch-llm/busybox:pulled"
    digest_file = tmp_path / "digest"
    pushed = podman(
        "push", "--tls-verify=false", "--creds", f"maria:{maria}", "--digestfile",
        str(digest_file), local, remote,
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr.decode()[-800:]
    digest = digest_file.read_text().strip()
    assert podman("rmi", local).returncode == 0
    pinned = f"{registry.address}/dutch-llm/busybox@{digest}"
    assert podman("image", "exists", pinned).returncode != 0
    assert podman("pull", "--tls-verify=false", pinned).returncode != 0  # not without a token
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {maria}"}, timeout=30
    ) as api:
        made = api.post("/api/v1/jobs", json={
            "project": "dutch-llm", "container_image": "dutch-llm/busybox:pulled",
            "command": ["sh", "-c", "id -u; ls /bin/busybox"], "time_limit": 60,
        })  # fmt: skip
        assert made.status_code == 201, made.text
        done = wait_for(api, made.json()["id"])
        out = api.get(f"/api/v1/jobs/{done['id']}/logs").text
        err = api.get(f"/api/v1/jobs/{done['id']}/logs", params={"stream": "stderr"}).text
    assert done["state"] == "completed", (done["reason"], err)
    assert done["image_digest"] == digest  # it says exactly what it ran
    assert out.splitlines()[1] == "/bin/busybox" and out.splitlines()[0] != "0"
    # Pulled, with the job's credential from its private auth file.
    assert podman("image", "exists", pinned).returncode == 0
    podman("rmi", "--force", pinned)
