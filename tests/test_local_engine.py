"""The local engine runs real processes: every test here starts jobs on this machine."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fabriek.domain.accounts import JobOwner
from fabriek.domain.errors import NotFound
from fabriek.domain.job_states import TERMINAL_STATES, JobState
from fabriek.domain.jobs import JobSpec
from fabriek.engines import local_runner
from fabriek.engines.base import (
    Engine,
    EngineJob,
    EngineRejected,
    EngineUnavailable,
    LogStream,
    Observation,
)
from fabriek.engines.gpus import discover_gpus, gpu_type_from_name, nvml_gpu_names
from fabriek.engines.local import LocalEngine

# Whom the tests' jobs run as: the engine runs every job as its owner's own user.
ALICE = JobOwner(user_id=1, user="alice", project_id=1, project="climate")


def make_engine(state_dir: Path, gpus: int = 4) -> LocalEngine:
    """An engine on virtual GPUs, so the tests behave the same on a GPU machine."""
    return LocalEngine("local", state_dir, gpus, "h100", detect_gpus=False, kill_grace_s=0.5)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[LocalEngine]:
    made = make_engine(tmp_path / "jobs")
    yield made
    for handle in made.known_jobs().values():  # leave no process behind
        made.cancel(handle)


def job(job_id: int, *argv: str, gpus: int = 0, time_limit_s: int = 60) -> EngineJob:
    spec = JobSpec(name=f"job{job_id}", command=argv, gpus=gpus, time_limit_s=time_limit_s)
    return EngineJob(job_id, spec, owner=ALICE)


def wait_for(engine: LocalEngine, handle: str, timeout: float = 10.0) -> Observation:
    """Poll until the job has ended."""
    end = time.monotonic() + timeout
    while True:
        seen = engine.poll({int(handle): handle})[int(handle)]
        if seen.state in TERMINAL_STATES or time.monotonic() > end:
            return seen
        time.sleep(0.05)


def wait_running(engine: LocalEngine, handle: str) -> Observation:
    end = time.monotonic() + 10
    while True:
        seen = engine.poll({int(handle): handle})[int(handle)]
        if seen.state != JobState.STARTING or time.monotonic() > end:
            return seen
        time.sleep(0.02)


def test_it_is_an_engine(engine: LocalEngine) -> None:
    assert isinstance(engine, Engine)
    assert (engine.inventory.count, engine.inventory.gpu_type) == (4, "h100")
    assert engine.free_gpus() == (0, 1, 2, 3)


def test_a_job_runs_to_completion_and_keeps_its_output(engine: LocalEngine) -> None:
    handle = engine.submit(job(1, "bash", "-c", "echo hello; echo oops >&2", gpus=2))
    seen = wait_for(engine, handle)
    assert (seen.state, seen.exit_code, seen.reason) == (JobState.COMPLETED, 0, None)
    assert seen.started_at and seen.ended_at and seen.started_at <= seen.ended_at
    elapsed = (seen.ended_at - seen.started_at).total_seconds()
    assert seen.gpu_seconds == {"0": elapsed, "1": elapsed}
    assert engine.read_log(handle, LogStream.STDOUT) == b"hello\n"
    assert engine.read_log(handle, LogStream.STDERR) == b"oops\n"
    assert engine.read_log(handle, LogStream.STDOUT, offset=2, limit=2) == b"ll"
    assert engine.free_gpus() == (0, 1, 2, 3)


def test_a_failing_job_reports_its_exit_code(engine: LocalEngine) -> None:
    seen = wait_for(engine, engine.submit(job(1, "bash", "-c", "exit 3")))
    assert (seen.state, seen.exit_code, seen.reason) == (JobState.FAILED, 3, "exit code 3")


def test_a_command_that_does_not_exist_fails_with_a_reason(engine: LocalEngine) -> None:
    seen = wait_for(engine, engine.submit(job(1, "no-such-program-here")))
    assert seen.state == JobState.FAILED
    assert seen.reason and "could not start 'no-such-program-here'" in seen.reason


def test_a_script_runs_with_bash_in_the_job_directory(engine: LocalEngine) -> None:
    spec = JobSpec(name="s", script="#!/bin/bash\necho $0 $FABRIEK_JOB_ID\npwd\n")
    handle = engine.submit(EngineJob(7, spec, owner=ALICE))
    assert wait_for(engine, handle).state == JobState.COMPLETED
    work = engine.state_dir / handle / "work"  # the job's own workspace
    assert engine.read_log(handle, LogStream.STDOUT).decode().split() == [
        str(work / "script.sh"),
        "7",
        str(work),
    ]


def test_the_job_sees_its_environment_but_not_the_control_planes(
    engine: LocalEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FABRIEK_DATABASE_URL", "postgresql://secret")
    spec = JobSpec(
        name="env", command=("env",), environment={"MODEL": "llama", "CUDA_VISIBLE_DEVICES": "9"}
    )
    handle = engine.submit(EngineJob(1, spec, owner=ALICE))
    wait_for(engine, handle)
    seen = dict(
        line.split("=", 1)
        for line in engine.read_log(handle, LogStream.STDOUT).decode().splitlines()
    )
    assert seen["MODEL"] == "llama" and seen["FABRIEK_JOB_NAME"] == "env"
    assert seen["CUDA_VISIBLE_DEVICES"] == ""  # no GPUs asked, none visible, whatever it says
    assert "FABRIEK_DATABASE_URL" not in seen


def test_a_job_past_its_time_limit_is_stopped(engine: LocalEngine) -> None:
    started = time.monotonic()
    seen = wait_for(engine, engine.submit(job(1, "sleep", "30", time_limit_s=1)))
    assert seen.state == JobState.TIMED_OUT
    assert seen.reason == "time limit of 1 s reached"
    assert 1.0 <= time.monotonic() - started < 5


def test_a_job_that_ignores_sigterm_gets_sigkill_after_the_grace(engine: LocalEngine) -> None:
    # The job prints once its trap is set, so the runner's SIGTERM surely finds it set.
    script = "trap '' TERM; echo trapped; sleep 30"
    handle = engine.submit(job(1, "bash", "-c", script, time_limit_s=1))
    seen = wait_for(engine, handle)
    assert seen.state == JobState.TIMED_OUT
    assert engine.read_log(handle, LogStream.STDOUT) == b"trapped\n"
    assert seen.exit_code == 128 + signal.SIGKILL


def test_cancel_stops_a_running_job(engine: LocalEngine) -> None:
    handle = engine.submit(job(1, "sleep", "30", gpus=1))
    assert wait_running(engine, handle).state == JobState.RUNNING
    engine.cancel(handle)
    seen = wait_for(engine, handle)
    assert (seen.state, seen.reason) == (JobState.CANCELLED, "cancelled")
    assert engine.free_gpus() == (0, 1, 2, 3)
    engine.cancel(handle)  # cancelling an ended job is not an error
    engine.cancel("12345")  # nor is cancelling one never heard of


def test_cancel_right_after_submit_is_a_cancel_whatever_the_runner_was_doing(
    engine: LocalEngine,
) -> None:
    handles = [engine.submit(job(i, "sleep", "30")) for i in range(1, 6)]
    for handle in handles:
        engine.cancel(handle)
    assert {wait_for(engine, h).state for h in handles} == {JobState.CANCELLED}


def test_concurrent_jobs_see_distinct_gpus(engine: LocalEngine) -> None:
    show = ("bash", "-c", "echo $CUDA_VISIBLE_DEVICES; sleep 30")
    handles = [engine.submit(job(i, *show, gpus=2)) for i in (1, 2)]
    assert engine.free_gpus() == ()
    for handle in handles:
        wait_running(engine, handle)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(
        engine.read_log(h, LogStream.STDOUT) for h in handles
    ):
        time.sleep(0.02)
    visible = [engine.read_log(h, LogStream.STDOUT).decode().strip() for h in handles]
    assert visible == ["0,1", "2,3"]


def test_gpus_busy_now_or_never_enough(engine: LocalEngine) -> None:
    first = engine.submit(job(1, "sleep", "30", gpus=3))
    with pytest.raises(EngineUnavailable, match="not enough free GPUs now"):
        engine.submit(job(2, "true", gpus=2))
    assert not (engine.state_dir / "2").exists()  # nothing half-made to trip a retry
    with pytest.raises(EngineRejected, match="asks 5 GPUs; this machine has 4"):
        engine.submit(job(3, "true", gpus=5))
    engine.cancel(first)
    wait_for(engine, first)
    assert wait_for(engine, engine.submit(job(2, "true", gpus=2))).state == JobState.COMPLETED


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        (JobSpec(name="x", script="srun true\n", nodes=2), "needs a Slurm site"),
        (JobSpec(name="x", command=("true",), nodes=2, gpus=3), "do not split evenly"),
        (JobSpec(name="x", command=("true",), gpus=1, gpu_type="a100"), "asks a100 GPUs"),
        (JobSpec(name="x"), "exactly one of a command and a script"),
        (JobSpec(name="x", command=()), "command is empty"),
    ],
)
def test_jobs_this_machine_can_never_run_are_rejected(
    engine: LocalEngine, spec: JobSpec, says: str
) -> None:
    with pytest.raises(EngineRejected, match=says):
        engine.submit(EngineJob(1, spec, owner=ALICE))


def test_a_container_on_a_site_without_a_runtime_is_rejected(engine: LocalEngine) -> None:
    spec = JobSpec(name="c", command=("true",), container_image="python:3.12")
    with pytest.raises(EngineRejected, match="declares no container_runtime"):
        engine.submit(EngineJob(1, spec, owner=ALICE))


def test_submit_is_idempotent_per_job_id(engine: LocalEngine) -> None:
    # The mark is left in the job's workspace: its own folder outlives it.
    first = engine.submit(job(1, "bash", "-c", "echo x >> marks"))
    again = engine.submit(job(1, "bash", "-c", "echo y >> marks"))
    assert first == again and engine.known_jobs() == {1: first}
    wait_for(engine, first)
    assert (engine.state_dir / first / "work" / "marks").read_text() == "x\n"


def test_a_new_engine_adopts_running_and_finished_jobs(tmp_path: Path) -> None:
    old = make_engine(tmp_path / "jobs")
    done = old.submit(job(1, "bash", "-c", "echo done"))
    running = old.submit(job(2, "sleep", "30", gpus=2))
    wait_for(old, done)
    wait_running(old, running)

    new = make_engine(tmp_path / "jobs")  # the control plane restarted
    assert new.known_jobs() == {1: done, 2: running}
    seen = new.poll({1: done, 2: running})
    assert seen[1].state == JobState.COMPLETED and seen[2].state == JobState.RUNNING
    assert new.free_gpus() == (2, 3)  # the running job's GPUs stay taken
    with pytest.raises(EngineUnavailable):
        new.submit(job(3, "true", gpus=3))
    assert new.read_log(done, LogStream.STDOUT) == b"done\n"

    new.cancel(running)
    assert wait_for(new, running).state == JobState.CANCELLED
    assert new.free_gpus() == (0, 1, 2, 3)


def test_a_runner_killed_outright_leaves_a_lost_job(engine: LocalEngine) -> None:
    handle = engine.submit(job(1, "sleep", "30", gpus=1))
    wait_running(engine, handle)
    job_dir = engine.state_dir / handle
    runner = local_runner.read_json(job_dir / local_runner.RUNNER_FILE)
    started = local_runner.read_json(job_dir / local_runner.STARTED_FILE)
    assert runner and started
    os.kill(runner["pid"], signal.SIGKILL)
    seen = wait_for(engine, handle)
    assert seen.state == JobState.LOST
    assert seen.reason == (
        f"runner process {runner['pid']} disappeared without recording an exit status"
    )
    assert engine.free_gpus() == (0, 1, 2, 3)
    # The job dies with its runner instead of running on with GPUs it no longer holds.
    deadline = time.monotonic() + 5
    while local_runner.is_alive(started["pid"], started["start_ticks"]):
        assert time.monotonic() < deadline, "the job outlived its runner"
        time.sleep(0.02)


def test_a_recycled_pid_is_not_taken_for_the_runner(engine: LocalEngine) -> None:
    handle = engine.submit(job(1, "sleep", "30"))
    wait_running(engine, handle)
    job_dir = engine.state_dir / handle
    runner = local_runner.read_json(job_dir / local_runner.RUNNER_FILE)
    assert runner
    # Pretend the pid now belongs to another process: this very test process.
    fake = {"pid": os.getpid(), "start_ticks": runner["start_ticks"]}
    local_runner.write_json(job_dir / local_runner.RUNNER_FILE, fake)
    assert wait_for(engine, handle).state == JobState.LOST
    os.kill(runner["pid"], signal.SIGTERM)  # the real runner: stop it and its job


def test_a_relative_state_dir_works_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    relative = make_engine(Path("jobs"))
    handle = relative.submit(EngineJob(1, JobSpec(name="s", script="echo hi\n"), owner=ALICE))
    monkeypatch.chdir("/")
    assert wait_for(relative, handle).state == JobState.COMPLETED
    assert relative.read_log(handle, LogStream.STDOUT) == b"hi\n"


def test_a_missing_working_directory_fails_the_job_with_a_reason(engine: LocalEngine) -> None:
    spec = JobSpec(name="w", command=("true",), working_dir="/no/such/dir")
    seen = wait_for(engine, engine.submit(EngineJob(1, spec, owner=ALICE)))
    assert seen.state == JobState.FAILED
    assert seen.reason and "working directory '/no/such/dir'" in seen.reason


def test_what_a_crash_during_submit_left_is_cleared(tmp_path: Path) -> None:
    (tmp_path / "jobs" / ".new-3-abc").mkdir(parents=True)
    assert make_engine(tmp_path / "jobs").known_jobs() == {}
    assert not (tmp_path / "jobs" / ".new-3-abc").exists()


def test_unknown_handles(engine: LocalEngine) -> None:
    seen = engine.poll({5: "5", 6: "../etc"})
    assert seen[5].state == JobState.LOST and seen[6].state == JobState.LOST
    for handle in ("../etc", "5"):
        with pytest.raises(NotFound):
            engine.read_log(handle, LogStream.STDOUT)


def test_nvml_lookup_answers_on_any_machine() -> None:
    names = nvml_gpu_names()  # None without an NVIDIA driver, the devices' names with one
    assert names is None or all(isinstance(name, str) and name for name in names)
    inventory = discover_gpus(2, None)
    assert inventory.source == ("nvml" if names else "virtual")
    assert inventory.count == (len(names) if names else 2)


def test_gpu_discovery_without_nvml_gives_virtual_gpus() -> None:
    inventory = discover_gpus(3, "l40s", detect=False)
    assert (inventory.count, inventory.gpu_type, inventory.source) == (3, "l40s", "virtual")


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("NVIDIA H100 80GB HBM3", "h100"),
        ("NVIDIA H200", "h200"),
        ("NVIDIA A100-SXM4-80GB", "a100"),
        ("NVIDIA L40S", "l40s"),
        ("Tesla V100-SXM2-32GB", "tesla-v100-sxm2-32gb"),
    ],
)
def test_gpu_types_from_device_names(name: str, code: str) -> None:
    assert gpu_type_from_name(name) == code
