"""The local engine runs jobs inside container images with podman (Debian's, on this
machine): as the job's own user, with its GPUs' variables, its workspace and its datasets,
and nothing else of the machine; a cancelled or timed-out container is removed."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fabriek.domain.accounts import JobOwner, local_identity
from fabriek.domain.containers import ContainerRuntime, ContainerSupport
from fabriek.domain.job_states import TERMINAL_STATES, JobState
from fabriek.domain.jobs import JobSpec
from fabriek.engines import local_runner
from fabriek.engines.base import ContainerImage, EngineJob, EngineRejected, Observation
from fabriek.engines.local import LocalEngine
from fabriek.engines.local_containers import AUTH_FILE, container_name
from tests.container_images import PODMAN_GLOBAL, PODMAN_RUN, busybox_image, ensure_podman, podman

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local engine runs podman as root")

ALICE = JobOwner(user_id=7, user="alice", project_id=3, project="climate")
MALLORY = JobOwner(user_id=8, user="mallory", project_id=4, project="rival")
PODMAN = ContainerSupport(ContainerRuntime.PODMAN, False, PODMAN_GLOBAL, PODMAN_RUN)


@pytest.fixture(scope="module")
def image() -> str:
    if why := ensure_podman():
        pytest.skip(why)
    return busybox_image()


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir()
    (path / "master.key").write_text("the-master-key")
    return path


@pytest.fixture
def engine(state: Path) -> Iterator[LocalEngine]:
    made = LocalEngine(
        "local", state / "engines" / "site", 4, "h100", detect_gpus=False, kill_grace_s=0.5,
        private_paths=[state], containers=PODMAN,
    )  # fmt: skip
    yield made
    for handle in made.known_jobs().values():
        made.cancel(handle)


def in_image(
    job_id: int, image: str, *argv: str, owner: JobOwner = ALICE, **spec: object
) -> EngineJob:
    made = JobSpec(name=f"c{job_id}", command=argv, container_image=image, **spec)  # type: ignore[arg-type]
    return EngineJob(job_id, made, owner=owner)


def ended(engine: LocalEngine, handle: str, timeout: float = 60) -> Observation:
    deadline = time.monotonic() + timeout
    while True:
        seen = engine.poll({int(handle): handle})[int(handle)]
        if seen.state in TERMINAL_STATES:
            return seen
        assert time.monotonic() < deadline, seen
        time.sleep(0.05)


def output(engine: LocalEngine, handle: str, stream: str = "stdout") -> str:
    return (engine.state_dir / handle / stream).read_text()


def containers_named(name: str) -> str:
    done = podman("ps", "-a", "--filter", f"name=^{name}$", "--format", "{{.Names}}")
    return done.stdout.decode().strip()


def test_a_job_runs_in_its_image_as_its_user_with_gpus_workspace_and_datasets(
    engine: LocalEngine, image: str, tmp_path: Path
) -> None:
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "rows.csv").write_text("a,b\n1,2\n")
    script = (
        "id -u; id -g; echo gpus=$CUDA_VISIBLE_DEVICES; cat $FABRIEK_DATASETS/rows.csv; "
        "pwd; echo written > result.txt; echo $HOME; "
        "touch $FABRIEK_DATASETS/mine 2>/dev/null && echo dataset-writable || echo dataset-ro; "
        "cat /bin/busybox > /dev/null && echo image-root"
    )
    job = EngineJob(
        1,
        JobSpec(name="c1", command=("sh", "-c", script), container_image=image, gpus=2,
                environment={"FABRIEK_DATASETS": str(staged)}),
        owner=ALICE, datasets_dir=staged,
    )  # fmt: skip
    handle = engine.submit(job)
    seen = ended(engine, handle)
    who = local_identity(ALICE)
    work = engine.state_dir / handle / "work"
    lines = output(engine, handle).splitlines()
    assert seen.state is JobState.COMPLETED, output(engine, handle, "stderr")
    assert lines[:3] == [str(who.uid), str(who.gid), "gpus=0,1"]
    assert "1,2" in lines and str(work) in lines and "dataset-ro" in lines
    assert "image-root" in lines  # its files are the image's, not the machine's
    assert (work / "result.txt").read_text() == "written\n"
    assert (work / "result.txt").stat().st_uid == who.uid
    assert containers_named(container_name(engine.state_dir, "local", 1)) == ""


def test_from_inside_its_container_a_job_sees_nothing_of_others_or_the_keys(
    engine: LocalEngine, image: str, state: Path
) -> None:
    victim = engine.submit(
        EngineJob(1, JobSpec(name="v", command=("bash", "-c", "echo secret-of-alice")), owner=ALICE)
    )
    ended(engine, victim)
    victim_dir = engine.state_dir / victim
    attack = "; ".join(
        [
            "id -u",
            f"cat {victim_dir}/stdout",
            f"cat {state}/master.key",
            f"ls {engine.state_dir}",
            "cat /proc/1/environ | tr '\\0' '\\n' | grep -c FABRIEK_JOB_ID",
            "echo attack-over",
        ]
    )
    thief = engine.submit(in_image(2, image, "sh", "-c", attack, owner=MALLORY))
    ended(engine, thief)
    out, err = output(engine, thief), output(engine, thief, "stderr")
    assert out.splitlines()[0] == str(local_identity(MALLORY).uid)
    assert "attack-over" in out
    assert "secret-of-alice" not in out and "the-master-key" not in out
    assert "No such file" in err  # the state folder is not in the container at all


def test_a_container_that_exits_at_once_shows_why(engine: LocalEngine, image: str) -> None:
    handle = engine.submit(in_image(1, image, "no-such-program", "--flag"))
    seen = ended(engine, handle)
    assert seen.state is JobState.FAILED and seen.exit_code
    # Its init's own words, on its stderr and as the job's reason.
    assert "No such file" in output(engine, handle, "stderr")
    assert seen.reason and "did not run" in seen.reason and "No such file" in seen.reason

    missing = engine.submit(in_image(2, image.rsplit(":", 1)[0] + ":not-there", "true"))
    seen = ended(engine, missing)
    assert seen.state is JobState.FAILED and seen.reason and "not-there" in seen.reason


def test_a_script_runs_with_its_own_interpreter_line(engine: LocalEngine, image: str) -> None:
    spec = JobSpec(name="s", script="#!/bin/sh\necho from-script $(id -u)\n", container_image=image)
    handle = engine.submit(EngineJob(1, spec, owner=ALICE))
    assert ended(engine, handle).state is JobState.COMPLETED, output(engine, handle, "stderr")
    assert output(engine, handle) == f"from-script {local_identity(ALICE).uid}\n"


@pytest.mark.parametrize("how", ["cancel", "time limit"])
def test_a_stopped_container_job_leaves_no_container(
    engine: LocalEngine, image: str, how: str
) -> None:
    limit = 2 if how == "time limit" else 600
    handle = engine.submit(
        in_image(1, image, "sh", "-c", "trap '' TERM; echo up; while :; do sleep 1; done",
                 time_limit_s=limit)
    )  # fmt: skip
    name = container_name(engine.state_dir, "local", 1)
    stdout, deadline = engine.state_dir / handle / "stdout", time.monotonic() + 60
    while not (stdout.exists() and "up" in stdout.read_text()):
        assert time.monotonic() < deadline, output(engine, handle, "stderr")
        time.sleep(0.05)
    assert containers_named(name) == name
    if how == "cancel":
        engine.cancel(handle)
    seen = ended(engine, handle)
    assert seen.state is (JobState.CANCELLED if how == "cancel" else JobState.TIMED_OUT)
    assert containers_named(name) == ""


def test_a_pull_credential_is_in_a_private_file_never_on_a_command_line(
    engine: LocalEngine, image: str
) -> None:
    job = in_image(1, image, "sh", "-c", "sleep 2")
    pinned = EngineJob(
        1, job.spec, owner=ALICE,
        image=ContainerImage(image, None, username="pull-user", password="pull-secret"),
    )  # fmt: skip
    handle = engine.submit(pinned)
    job_dir = engine.state_dir / handle
    meta = json.loads((job_dir / local_runner.JOB_FILE).read_text())
    assert "pull-secret" not in json.dumps(meta["argv"])
    assert meta["argv"][meta["argv"].index("--authfile") + 1] == str(job_dir / AUTH_FILE)
    assert (job_dir / AUTH_FILE).stat().st_mode & 0o777 == 0o600
    assert "pull-secret" not in subprocess.run(["ps", "-eo", "args"], capture_output=True,
                                               text=True).stdout  # fmt: skip
    assert ended(engine, handle).state is JobState.COMPLETED
    assert not (job_dir / AUTH_FILE).exists()  # removed with the container


def test_a_site_that_declares_no_runtime_refuses_images(state: Path, image: str) -> None:
    bare = LocalEngine("bare", state / "engines" / "bare", 1, detect_gpus=False)
    with pytest.raises(EngineRejected, match="declares no container_runtime"):
        bare.submit(in_image(1, image, "true"))


def test_a_job_in_an_image_runs_on_one_node_here(engine: LocalEngine, image: str) -> None:
    with pytest.raises(EngineRejected, match="in an image on one node, not 2"):
        engine.submit(in_image(1, image, "true", nodes=2))


def test_a_container_whose_runner_was_killed_is_removed_when_the_job_is_seen_lost(
    engine: LocalEngine, image: str
) -> None:
    handle = engine.submit(in_image(1, image, "sh", "-c", "echo up; sleep 600"))
    name = container_name(engine.state_dir, "local", 1)
    stdout, deadline = engine.state_dir / handle / "stdout", time.monotonic() + 60
    while not (stdout.exists() and "up" in stdout.read_text()):
        assert time.monotonic() < deadline, output(engine, handle, "stderr")
        time.sleep(0.05)
    runner = local_runner.read_json(engine.state_dir / handle / local_runner.RUNNER_FILE)
    assert runner is not None
    os.kill(runner["pid"], 9)  # killed outright: no time to remove its container
    seen = ended(engine, handle)
    assert seen.state is JobState.LOST
    assert containers_named(name) == ""
