"""A job in a container image on several nodes of a real Slurm site: srun starts rootless
podman once per node, as the job's user, each container with its node's rendezvous
variables; a container failing on one node fails the job."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fabriek.domain.containers import ContainerRuntime, ContainerSupport
from fabriek.domain.job_states import JobState
from fabriek.domain.rendezvous import rendezvous_port
from fabriek.engines.base import LogStream
from fabriek.engines.slurm import SlurmEngine
from tests.container_images import (
    PODMAN_GLOBAL,
    PODMAN_RUN,
    busybox_archive,
    ensure_podman,
    ensure_subordinate_ids,
)
from tests.slurm.conftest import ALICE, TEST_USERS
from tests.slurm.test_slurm_containers import pause_processes
from tests.slurm.test_slurm_engine import command_job, wait_for
from tests.slurm.test_slurm_multinode import by_node, output
from tests.slurm_harness import SlurmCluster

pytestmark = pytest.mark.slurm
ALICE_UID = TEST_USERS[ALICE.user]

SHOW = (
    'echo "rank=$NODE_RANK pet=$PET_NODE_RANK of=$NNODES addr=$MASTER_ADDR port=$MASTER_PORT '
    "world=$WORLD_SIZE local=$LOCAL_WORLD_SIZE node=$SLURM_NODEID uid=$(id -u) "
    'in=$(test -e /etc/debian_version && echo host || echo image)"'
)


@pytest.fixture(scope="module")
def podman_gang(site_a: SlurmCluster, logs: Path) -> Iterator[tuple[SlurmEngine, str]]:
    """Site A (two nodes of four H100) declaring rootless podman, as in
    test_slurm_containers.py: each user's storage and HOME under a folder of this test's."""
    if why := ensure_podman():
        pytest.skip(f"CONTAINER TESTS SKIPPED: {why}")
    ensure_subordinate_ids(ALICE.user, 1_000_000_000)
    folder = Path(tempfile.mkdtemp(prefix="fabriek-podman-gang-", dir="/tmp"))
    folder.chmod(0o1777)
    image = busybox_archive(folder)
    (folder / "home").mkdir(mode=0o1777)
    (folder / "home").chmod(0o1777)
    mine = f"{folder}/podman-${{USER}}"
    support = ContainerSupport(
        ContainerRuntime.PODMAN,
        global_options=(*PODMAN_GLOBAL, "--root", f"{mine}/root", "--runroot", f"{mine}/run"),
        run_options=PODMAN_RUN,
        environment=(("HOME", f"{folder}/home"),),
    )
    before = pause_processes(ALICE_UID)
    yield SlurmEngine("sitea", site_a.env, logs, command_timeout_s=20, containers=support), image
    for pid in pause_processes(ALICE_UID) - before:  # what this test's jobs left running
        os.kill(pid, 9)
    shutil.rmtree(folder, ignore_errors=True)


def test_the_container_runs_on_every_node_with_its_rendezvous_variables(
    podman_gang: tuple[SlurmEngine, str],
) -> None:
    engine, image = podman_gang
    job = command_job(4201, "sh", "-c", SHOW, container_image=image, nodes=2, gpus=4,
                      gpu_type="h100")  # fmt: skip
    handle = engine.submit(job)
    done = wait_for(engine, 4201, handle, timeout_s=120)
    out = output(engine, handle, 2)
    err = engine.read_log(handle, LogStream.STDERR).decode()
    assert done.state == JobState.COMPLETED, (done, out, err)
    nodes = by_node(out)
    assert sorted(nodes) == ["0", "1"], (out, err)
    for rank, text in nodes.items():
        fields = dict(word.split("=", 1) for word in text.split())
        assert fields["rank"] == fields["pet"] == fields["node"] == rank, text
        assert (fields["of"], fields["addr"], fields["port"]) == (
            "2",
            "sitean1",
            str(rendezvous_port(4201)),
        )
        assert (fields["world"], fields["local"]) == ("4", "2"), text
        # Inside the image (no Debian there, unlike this machine), as the job's own user.
        assert (fields["uid"], fields["in"]) == (str(ALICE_UID), "image"), text


def test_a_container_failing_on_one_node_fails_the_job(
    podman_gang: tuple[SlurmEngine, str],
) -> None:
    engine, image = podman_gang
    script = 'if [ "$NODE_RANK" = 1 ]; then exit 5; fi; sleep 600'
    job = command_job(4202, "sh", "-c", script, container_image=image, nodes=2,
                      time_limit_s=900)  # fmt: skip
    handle = engine.submit(job)
    done = wait_for(engine, 4202, handle, timeout_s=120)
    assert done.state == JobState.FAILED, (done, engine.read_log(handle, LogStream.STDERR))
    assert done.exit_code not in (None, 0)
