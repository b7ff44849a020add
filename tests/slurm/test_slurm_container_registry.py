"""A job on a real Slurm site pulls its image from the factory's own registry: the engine
hands the batch script a pull credential, rootless podman reads it from a file of the
job's user (never a command line) and pulls the image by digest."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from fabriek.domain.job_states import JobState
from fabriek.engines.base import ContainerImage, LogStream
from fabriek.engines.slurm import SlurmEngine
from fabriek.services.demo.seed import demo_token
from tests.container_images import busybox_variant, podman
from tests.servers import LiveServer
from tests.slurm.test_slurm_containers import podman_site  # noqa: F401 (a fixture)
from tests.slurm.test_slurm_engine import command_job, wait_for
from tests.test_api_container_registry import Registry, world  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slurm


def test_a_slurm_job_pulls_its_projects_image_from_the_factorys_registry(
    podman_site: tuple[SlurmEngine, str],  # noqa: F811
    world: tuple[LiveServer, Registry],  # noqa: F811
    tmp_path: Path,
) -> None:
    site, _ = podman_site
    _server, registry = world
    local = busybox_variant(uuid.uuid4().hex[:12])  # a digest no store has: it must be pulled
    digest_file = tmp_path / "digest"
    pushed = podman(
        "push", "--tls-verify=false", "--creds", f"maria:{demo_token('maria').token}",
        "--digestfile", str(digest_file), local, f"{registry.address}/dutch-llm/busybox:slurm",
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr.decode()[-800:]
    podman("rmi", local)
    digest = digest_file.read_text().strip()
    assert site.containers is not None
    # The test registry speaks plain HTTP: the site's own option says so.
    support = replace(site.containers, run_options=(*site.containers.run_options,
                                                     "--tls-verify=false"))  # fmt: skip
    engine = SlurmEngine("siteb", site.env, site.log_dir, command_timeout_s=20, containers=support)
    # A job's own credential is honoured only while the control plane's job runs (that is
    # tests/test_api_container_registry.py); here, a member's API token stands in for it.
    user, password = "maria", demo_token("maria").token
    pinned = ContainerImage(
        f"{registry.address}/dutch-llm/busybox@{digest}", digest, user, password
    )
    job = command_job(33, "sh", "-c", "ls /bin/busybox", container_image="dutch-llm/busybox:slurm")
    handle = engine.submit(replace(job, image=pinned))
    done = wait_for(engine, 33, handle)
    err = engine.read_log(handle, LogStream.STDERR).decode()
    assert done.state == JobState.COMPLETED, (done, err)
    assert engine.read_log(handle, LogStream.STDOUT) == b"/bin/busybox\n"
    assert password not in err
