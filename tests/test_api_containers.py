"""Jobs in container images through the HTTP API, on the local engine with Debian's podman:
the job runs in the image as its own user, with its GPUs' variables, its dataset (read-only)
and its working directory; a container that exits at once shows why; an image no site can
run is refused before it is queued, naming what is missing."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fabriek.domain.accounts import DEFAULT_ID_BASE
from fabriek.domain.capacity import SiteShape
from fabriek.domain.containers import image_sites
from fabriek.domain.errors import InvalidInput
from fabriek.domain.jobs import JobSpec
from fabriek.domain.sites import NodeGroup
from fabriek.services.demo.seed import SITES, demo_token
from fabriek.settings import Settings
from tests.conftest import Client, problem_of
from tests.container_images import busybox_image, ensure_podman, podman_sites_file
from tests.jobs_helpers import submit, wait_for
from tests.servers import LiveServer, live_server, prepare, throwaway_database
from tests.test_api_budgets import grant, new_project
from tests.test_cli import fabriek, one_line_error
from tests.test_job_datasets import push

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local engine runs podman as root")
IMAGING_SITE = "eindhoven"  # the one demo site that runs images here (registered last)
HOURS = {"h200": 10.0, "h100": 10.0, "mi300x": 10.0, "a100": 10.0, "l40s": 10.0}


@pytest.fixture(scope="module")
def image() -> str:
    if why := ensure_podman():
        pytest.skip(f"CONTAINER TESTS SKIPPED: {why}")
    return busybox_image()


@pytest.fixture(scope="module")
def ct_server(image: str) -> Iterator[LiveServer]:
    """A factory of its own (its own database: two servers' dispatchers on one database
    would each take the other's jobs for lost)."""
    with tempfile.TemporaryDirectory() as tmp, throwaway_database("sqlite", Path(tmp)) as url:
        prepare(url)
        settings = Settings(
            database_url=url,
            state_dir=Path(tmp) / "state",
            # Every demo site on the local engine; only IMAGING_SITE runs images.
            sites_file=podman_sites_file(
                Path(tmp) / "sites.toml", [s.name for s in SITES], {IMAGING_SITE}
            ),
            dispatch_interval_s=0.2,
        )
        with live_server(settings) as live:
            yield live


@pytest.fixture
def ct(ct_server: LiveServer) -> Iterator[Client]:
    opened: list[httpx.Client] = []

    def make(username: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {demo_token(username).token}"} if username else {}
        c = httpx.Client(base_url=ct_server.url, headers=headers, timeout=30)
        opened.append(c)
        return c

    yield make
    for c in opened:
        c.close()


def logs(c: httpx.Client, job_id: int, stream: str = "stdout") -> str:
    return c.get(f"/api/v1/jobs/{job_id}/logs", params={"stream": stream}).text


def test_a_job_runs_in_its_image_with_its_gpus_dataset_and_working_directory(
    ct: Client, image: str, unique: str
) -> None:
    project = new_project(ct, unique)
    grant(ct, project, HOURS)
    pieter = ct("pieter")
    push(pieter, project, "patients")
    script = (
        "id -u; echo gpus=$CUDA_VISIBLE_DEVICES; head -1 $FABRIEK_DATASETS/patients; "
        "echo kept > out.txt && cat out.txt; "
        "touch $FABRIEK_DATASETS/x 2>/dev/null && echo dataset-writable || echo dataset-ro; "
        "ls /bin/busybox"
    )
    job = submit(
        pieter, project=project, gpus=2, time_limit="5m", datasets=["patients"],
        container_image=image, command=["sh", "-c", script],
    )  # fmt: skip
    done = wait_for(pieter, job["id"])
    out = logs(pieter, job["id"])
    assert done["state"] == "completed", (done, logs(pieter, job["id"], "stderr"))
    assert done["site"] == IMAGING_SITE and done["container_image"] == image
    lines = out.splitlines()
    assert int(lines[0]) >= DEFAULT_ID_BASE  # its own user, never root
    assert lines[1].startswith("gpus=") and len(lines[1].split(",")) == 2
    assert lines[2:] == ["patient,age", "kept", "dataset-ro", "/bin/busybox"]


def test_a_batch_script_names_its_image_with_an_sbatch_line(
    ct: Client, image: str, unique: str
) -> None:
    project = new_project(ct, unique)
    grant(ct, project, HOURS)
    pieter = ct("pieter")
    script = f"#!/bin/sh\n#SBATCH --container-image={image}\n#SBATCH --time=5\nls /bin/busybox\n"
    job = submit(pieter, project=project, script=script)
    assert job["container_image"] == image
    done = wait_for(pieter, job["id"])
    assert done["state"] == "completed", (done, logs(pieter, job["id"], "stderr"))
    assert logs(pieter, job["id"]) == "/bin/busybox\n"


def test_a_container_that_exits_at_once_shows_its_output(
    ct: Client, image: str, unique: str
) -> None:
    project = new_project(ct, unique)
    grant(ct, project, HOURS)
    pieter = ct("pieter")
    job = submit(pieter, project=project, container_image=image, command=["no-such-program"])
    done = wait_for(pieter, job["id"])
    assert done["state"] == "failed"
    assert "did not run" in done["reason"] and "No such file" in done["reason"]
    assert "No such file" in logs(pieter, job["id"], "stderr")


def test_an_image_that_no_site_can_run_is_refused_before_it_is_queued(
    ct: Client, image: str, unique: str
) -> None:
    project = new_project(ct, unique)
    pieter = ct("pieter")
    # h200s are only at a site that runs no images here.
    refused = pieter.post(
        "/api/v1/jobs",
        json={"project": project, "container_image": image, "command": ["true"], "gpus": 1,
              "gpu_type": "h200"},
    )  # fmt: skip
    detail = str(problem_of(refused, 422)["detail"])
    assert "only eindhoven can run images, and it has no h200 GPUs there" in detail
    # The same job without an image is welcome.
    plain = {"project": project, "command": ["true"], "gpus": 1, "gpu_type": "h200"}
    assert pieter.post("/api/v1/jobs", json=plain).status_code == 201


def test_a_factory_whose_sites_run_no_images_names_what_is_missing() -> None:
    shapes = [SiteShape("a", (NodeGroup("n", 1, None, 0, 8, 64),), 3600)]
    with pytest.raises(InvalidInput) as refused:
        image_sites(JobSpec(name="j", command=("true",), container_image="x/y:1"), shapes)
    assert refused.value.problems[0].field == "container_image"
    assert "none of them declares a container runtime" in str(refused.value)
    assert "container_runtime in the sites file" in str(refused.value)


def test_the_cli_runs_a_command_in_an_image_and_shows_it(
    ct_server: LiveServer, image: str, tmp_path: Path
) -> None:
    env = {"FABRIEK_URL": ct_server.url, "FABRIEK_TOKEN": demo_token("maria").token,
           "FABRIEK_CONFIG_DIR": str(tmp_path)}  # fmt: skip
    out = fabriek("run", "--image", image, "--", "sh", "-c", "ls /bin/busybox", env=env).stdout
    job_id = int(out.split()[-1])
    with httpx.Client(
        base_url=ct_server.url, headers={"Authorization": f"Bearer {env['FABRIEK_TOKEN']}"}
    ) as api:
        done = wait_for(api, job_id)
    assert done["state"] == "completed", done["reason"]
    assert fabriek("logs", str(job_id), env=env).stdout == "/bin/busybox\n"
    shown = fabriek("job", str(job_id), env=env).stdout
    assert "container_image" in shown and image in shown
    # An image no site that has the GPUs can run: one line, naming what is missing.
    refused = fabriek("run", "--image", image, "--gpus", "1", "--gpu-type", "h200", "--",
                      "true", env=env, check=False)  # fmt: skip
    assert "only eindhoven can run images" in one_line_error(refused, 2)


def test_the_portal_submits_a_job_in_an_image_and_its_page_shows_it(
    ct_server: LiveServer, image: str, unique: str, ct: Client
) -> None:
    project = new_project(ct, unique, pi="sanne")
    grant(ct, project, HOURS)
    with httpx.Client(base_url=ct_server.url, timeout=30) as portal:
        signed = portal.post("/signin", data={"token": demo_token("sanne").token, "next": "/"})
        assert signed.status_code == 303
        sent = {"project": project, "command": "ls /bin/busybox", "gpus": "0",
                "time_limit": "5m", "container_image": image}  # fmt: skip
        answer = portal.post("/jobs", data=sent)
        assert answer.status_code == 303, answer.text
        job_id = int(answer.headers["location"].rsplit("/", 1)[-1])
        done = wait_for(ct("sanne"), job_id)
        assert done["state"] == "completed", done["reason"]
        page = portal.get(f"/jobs/{job_id}").text
    assert f'<code id="job-image">{image}</code>' in page and "/bin/busybox" in page


def test_a_job_in_an_image_waits_for_the_sites_that_run_images_and_says_so(
    ct: Client, image: str, unique: str
) -> None:
    project = new_project(ct, unique)
    grant(ct, project, HOURS)
    pieter = ct("pieter")
    # Every GPU of the sites that run images, held (their GPU types pin them there; plain
    # commands, since a job this large spans several nodes, where a local site runs no image).
    holders = [
        submit(pieter, project=project, gpus=gpus, gpu_type=kind, time_limit="5m",
               command=["sleep", "120"])
        for kind, gpus in (("mi300x", 64), ("l40s", 48))
    ]  # fmt: skip
    for held in holders:
        wait_for(pieter, held["id"], {"running"})
    waiting = submit(pieter, project=project, gpus=1, container_image=image, command=["true"])
    deadline = time.monotonic() + 30
    while True:
        job = pieter.get(f"/api/v1/jobs/{waiting['id']}").json()
        assert job["state"] == "pending", job  # never placed at a site that runs no images
        if "ContainerSites" in (job["reason"] or ""):
            break
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    assert "none of the sites that run images" in job["reason"]
    for held in [*holders, waiting]:
        pieter.post(f"/api/v1/jobs/{held['id']}/cancel")
