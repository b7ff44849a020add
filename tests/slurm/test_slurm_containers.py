"""A job in a container image on a real Slurm site: the batch script starts Debian's podman
rootless, as the job's own user (`--userns keep-id`), in the directory Slurm started it in,
with the GPUs Slurm gave it. Apptainer and Pyxis cannot run here: their scripts are tested
in tests/test_container_commands.py."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from fabriek.domain.containers import ContainerRuntime, ContainerSupport
from fabriek.domain.job_states import JobState
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
from tests.slurm.test_slurm_engine import command_job, wait_for
from tests.slurm_harness import SlurmCluster

pytestmark = pytest.mark.slurm
ALICE_UID = TEST_USERS[ALICE.user]


def pause_processes(uid: int) -> set[int]:
    """The pids of rootless podman's pause processes (`catatonit -P`) of user `uid`."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            mine = entry.name.isdigit() and entry.stat().st_uid == uid
            if mine and (entry / "cmdline").read_bytes().split(b"\0")[:2] == [b"catatonit", b"-P"]:
                found.add(int(entry.name))
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def podman_site(site_b: SlurmCluster, logs: Path) -> Iterator[tuple[SlurmEngine, str]]:
    """Site B declaring rootless podman: each user's storage and HOME under a folder of this
    test's (this machine's users have no homes), and the machine's own podman options."""
    if why := ensure_podman():
        pytest.skip(f"CONTAINER TESTS SKIPPED: {why}")
    ensure_subordinate_ids(ALICE.user, 1_000_000_000)
    folder = Path(tempfile.mkdtemp(prefix="fabriek-podman-", dir="/tmp"))
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
    yield SlurmEngine("siteb", site_b.env, logs, command_timeout_s=20, containers=support), image
    for pid in pause_processes(ALICE_UID) - before:  # what this test's jobs left running
        os.kill(pid, 9)
    shutil.rmtree(folder, ignore_errors=True)


def test_a_job_runs_in_its_image_as_its_user_on_a_slurm_site(
    podman_site: tuple[SlurmEngine, str],
) -> None:
    engine, image = podman_site
    staged = Path(tempfile.mkdtemp(prefix="fabriek-staged-", dir="/tmp"))
    staged.chmod(0o755)
    (staged / "rows.csv").write_text("a,b\n")
    (staged / "rows.csv").chmod(0o644)
    script = (
        "id -u; echo gpus=$CUDA_VISIBLE_DEVICES; pwd; ls /bin/busybox; echo made > made.txt; "
        "cat $FABRIEK_DATASETS/rows.csv; touch $FABRIEK_DATASETS/x 2>/dev/null || echo ro"
    )
    job = command_job(31, "sh", "-c", script, container_image=image, gpus=1,
                      environment={"FABRIEK_DATASETS": str(staged)})  # fmt: skip
    handle = engine.submit(replace(job, datasets_dir=staged))
    done = wait_for(engine, 31, handle)
    out = engine.read_log(handle, LogStream.STDOUT).decode()
    err = engine.read_log(handle, LogStream.STDERR).decode()
    assert done.state == JobState.COMPLETED, (done, out, err)
    lines = out.splitlines()
    assert lines[0] == str(ALICE_UID)  # the job's own user inside, never root
    assert lines[1].startswith("gpus=") and lines[1] != "gpus="  # Slurm's, passed in
    work = engine.log_dir  # where sbatch started it: mounted and worked in
    assert lines[2:] == [str(work), "/bin/busybox", "a,b", "ro"]  # its dataset, read-only
    assert (work / "made.txt").stat().st_uid == ALICE_UID
    shutil.rmtree(staged)


def test_a_script_runs_whole_in_its_image_on_a_slurm_site(
    podman_site: tuple[SlurmEngine, str],
) -> None:
    engine, image = podman_site
    text = '#!/bin/sh\n#SBATCH --time=5\necho "in $(id -u) with $GREETING"\n'
    job = command_job(32, container_image=image, environment={"GREETING": "hello there"})
    job = replace(job, spec=replace(job.spec, command=None, script=text))
    handle = engine.submit(job)
    done = wait_for(engine, 32, handle)
    out = engine.read_log(handle, LogStream.STDOUT).decode()
    assert done.state == JobState.COMPLETED, (done, engine.read_log(handle, LogStream.STDERR))
    assert out == f"in {ALICE_UID} with hello there\n"
