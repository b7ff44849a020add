"""The slurm engine against two real Slurm clusters running side by side.

The one slow test is the time limit: Slurm counts whole minutes and checks limits about
every 30 s, so a one-minute job times out 60-90 s after it starts. It is submitted by the
first test and checked by the last, so the other tests run while it waits.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Collection, Iterator
from pathlib import Path

import pytest

from fabriek.domain.containers import ContainerRuntime, ContainerSupport
from fabriek.domain.job_states import TERMINAL_STATES, JobState
from fabriek.domain.jobs import JobSpec
from fabriek.engines.base import (
    Engine,
    EngineJob,
    EngineRejected,
    EngineUnavailable,
    LogStream,
    Observation,
)
from fabriek.engines.slurm import SlurmEngine
from tests.slurm.conftest import ALICE
from tests.slurm_harness import SlurmCluster

pytestmark = pytest.mark.slurm


def wait_for(
    engine: SlurmEngine,
    job_id: int,
    handle: str,
    states: Collection[JobState] = TERMINAL_STATES,
    timeout_s: float = 30.0,
) -> Observation:
    """Poll until the job is in one of `states`; fail with the last observation if not."""
    deadline = time.monotonic() + timeout_s
    while True:
        obs = engine.poll({job_id: handle})[job_id]
        if obs.state in states:
            return obs
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id} not in {states} after {timeout_s} s: {obs}")
        time.sleep(0.2)


def command_job(job_id: int, *argv: str, **spec: object) -> EngineJob:
    """A job of Alice's (every job runs as its owner's own account at the site)."""
    return EngineJob(job_id, JobSpec(name=f"test-{job_id}", command=argv, **spec), owner=ALICE)  # type: ignore[arg-type]


def slurm_jobs_tagged(cluster: SlurmCluster, job_id: int) -> list[str]:
    """Slurm ids of the jobs carrying Fabriek id `job_id`, straight from squeue."""
    out = subprocess.run(
        ["squeue", "-h", "-t", "all", "-o", "%i %k"],
        env=cluster.client_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [
        line.split()[0] for line in out.splitlines() if line.split()[1:] == [f"fabriek:{job_id}"]
    ]


@pytest.fixture(scope="module")
def time_limit_job(engine_a: SlurmEngine) -> Iterator[tuple[int, str]]:
    job = command_job(900, "sleep", "600", time_limit_s=60, gpus=1, gpu_type="h100")
    yield job.job_id, engine_a.submit(job)


def test_the_engine_speaks_the_protocol(engine_a: SlurmEngine) -> None:
    assert isinstance(engine_a, Engine)


def test_a_job_over_its_time_limit_is_submitted(time_limit_job: tuple[int, str]) -> None:
    assert time_limit_job[1].isdigit()


def test_a_command_job_runs_with_its_gpus_environment_and_logs(engine_a: SlurmEngine) -> None:
    job = command_job(
        1,
        "bash",
        "-c",
        'echo "hello $GREETING"; echo "gpus=$CUDA_VISIBLE_DEVICES"; echo oops >&2; sleep 1',
        gpus=2,
        gpu_type="h100",
        environment={"GREETING": "it's me"},
    )
    handle = engine_a.submit(job)
    running = wait_for(engine_a, 1, handle, {JobState.RUNNING, *TERMINAL_STATES})
    done = wait_for(engine_a, 1, handle)
    assert done.state == JobState.COMPLETED, done
    assert done.exit_code == 0
    assert done.started_at is not None and done.ended_at is not None
    assert done.started_at <= done.ended_at
    out = engine_a.read_log(handle, LogStream.STDOUT).decode()
    assert "hello it's me" in out
    visible = out.split("gpus=")[1].split()[0].split(",")
    assert len(visible) == 2, out  # Slurm gave the job exactly its two GPUs
    assert engine_a.read_log(handle, LogStream.STDERR) == b"oops\n"
    assert engine_a.read_log(handle, LogStream.STDOUT, offset=6, limit=3) == out[6:9].encode()
    # GPU seconds: per allocated GPU, keyed by the indices Slurm showed while it ran.
    assert len(done.gpu_seconds) == 2
    if running.state == JobState.RUNNING:
        assert sorted(done.gpu_seconds) == sorted(visible)
    elapsed = (done.ended_at - done.started_at).total_seconds()
    assert all(s == elapsed for s in done.gpu_seconds.values())


def test_a_script_job_runs_on_the_other_site_at_the_same_time(
    engine_a: SlurmEngine, engine_b: SlurmEngine
) -> None:
    script = '#!/bin/bash\n#SBATCH --time=5\necho "on $SLURM_CLUSTER_NAME with $SLURM_JOB_GPUS"\n'
    job_b = EngineJob(
        2, JobSpec(name="script", script=script, gpus=1, gpu_type="a100"), owner=ALICE
    )
    job_a = command_job(2, "true")  # the same Fabriek id on another site is another job
    handle_b, handle_a = engine_b.submit(job_b), engine_a.submit(job_a)
    assert wait_for(engine_b, 2, handle_b).state == JobState.COMPLETED
    assert wait_for(engine_a, 2, handle_a).state == JobState.COMPLETED
    assert engine_b.read_log(handle_b, LogStream.STDOUT).decode().startswith("on siteb with ")


def test_a_job_on_two_nodes_gets_gpus_on_both(engine_a: SlurmEngine) -> None:
    job = command_job(3, "sleep", "2", nodes=2, gpus=4, gpu_type="h100")
    handle = engine_a.submit(job)
    running = wait_for(engine_a, 3, handle, {JobState.RUNNING})
    assert len(running.gpu_seconds) == 4
    assert {k.split(":")[0] for k in running.gpu_seconds} == {"sitean1", "sitean2"}
    done = wait_for(engine_a, 3, handle)
    assert done.state == JobState.COMPLETED
    assert sorted(done.gpu_seconds) == sorted(running.gpu_seconds)


def test_a_container_job_runs_under_apptainer(site_b: SlurmCluster, logs: Path) -> None:
    # No Apptainer on this machine: a stand-in on the job's PATH shows what it was asked.
    apptainer = ContainerSupport(ContainerRuntime.APPTAINER)
    engine = SlurmEngine("siteb", site_b.env, logs, command_timeout_s=20, containers=apptainer)
    fake = engine.log_dir / "bin" / "apptainer"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text('#!/bin/bash\necho "apptainer $*"\n')
    fake.chmod(0o755)
    path = f"{fake.parent}:/usr/bin:/bin"
    job = command_job(
        8, "python", "-V", container_image="/img/x.sif", gpus=1, environment={"PATH": path}
    )
    handle = engine.submit(job)
    assert wait_for(engine, 8, handle).state == JobState.COMPLETED
    work = engine.log_dir  # where sbatch started it: mounted, and worked in
    assert engine.read_log(handle, LogStream.STDOUT).decode() == (
        f"apptainer exec --no-home --nv --bind {work}:{work} --pwd {work} /img/x.sif python -V\n"
    )


def test_a_failing_job_fails_with_its_exit_code(engine_b: SlurmEngine) -> None:
    handle = engine_b.submit(command_job(4, "bash", "-c", "echo bad >&2; exit 3"))
    done = wait_for(engine_b, 4, handle)
    assert (done.state, done.exit_code, done.reason) == (JobState.FAILED, 3, "exit code 3")
    assert engine_b.read_log(handle, LogStream.STDERR) == b"bad\n"


def test_cancel_stops_running_and_waiting_jobs(engine_b: SlurmEngine) -> None:
    running = engine_b.submit(command_job(5, "sleep", "300", gpus=2))
    wait_for(engine_b, 5, running, {JobState.RUNNING})
    waiting = engine_b.submit(command_job(6, "sleep", "300", gpus=2))  # no GPUs left
    assert engine_b.poll({6: waiting})[6].state == JobState.PENDING
    engine_b.cancel(waiting)
    engine_b.cancel(running)
    assert wait_for(engine_b, 5, running).state == JobState.CANCELLED
    gone = wait_for(engine_b, 6, waiting)
    assert gone.state == JobState.CANCELLED and gone.started_at is None
    engine_b.cancel(running)  # again: not an error


def test_resubmitting_after_a_crash_starts_nothing_twice(
    engine_a: SlurmEngine, site_a: SlurmCluster, logs: object
) -> None:
    job = command_job(7, "sleep", "20")
    handle = engine_a.submit(job)
    assert engine_a.submit(job) == handle
    # A new control plane process: a fresh engine, with nothing in memory.
    fresh = SlurmEngine("sitea", site_a.env, engine_a.log_dir)
    assert fresh.known_jobs()[7] == handle
    assert SlurmEngine("sitea", site_a.env, engine_a.log_dir).submit(job) == handle
    assert slurm_jobs_tagged(site_a, 7) == [handle]
    engine_a.cancel(handle)


def test_submit_asks_the_cluster_once_per_engine_not_per_job(
    site_a: SlurmCluster, engine_a: SlurmEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = SlurmEngine("sitea", site_a.env, engine_a.log_dir)
    calls: list[str] = []
    real = fresh._run

    def counting(
        argv: list[str], stdin: str | None = None, tz: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        calls.append(argv[0])
        return real(argv, stdin, tz)

    monkeypatch.setattr(fresh, "_run", counting)
    handles = [fresh.submit(command_job(i, "true")) for i in (10, 11, 12)]
    assert calls == ["squeue", "sbatch", "sbatch", "sbatch"]
    calls.clear()
    seen = fresh.poll({10: handles[0], 11: handles[1], 12: handles[2]})
    assert calls == ["squeue"] and set(seen) == {10, 11, 12}
    calls.clear()
    lost = fresh.poll({13: "999999"})
    assert calls == ["squeue", "scontrol"]  # the fallback, only because one was missing
    assert lost[13].state == JobState.LOST and "999999" in (lost[13].reason or "")


def test_a_handle_of_another_job_is_lost(engine_a: SlurmEngine) -> None:
    handle = engine_a.submit(command_job(14, "true"))
    assert engine_a.poll({15: handle})[15].state == JobState.LOST


def test_sbatch_refusals_are_rejections(engine_b: SlurmEngine) -> None:
    with pytest.raises(EngineRejected, match="Requested node configuration is not available"):
        engine_b.submit(command_job(20, "true", gpus=3, gpu_type="a100"))
    with pytest.raises(EngineRejected, match="not available"):
        engine_b.submit(command_job(21, "true", gpus=1, gpu_type="v100"))
    with pytest.raises(EngineRejected, match="environment variable"):
        engine_b.submit(command_job(22, "true", environment={"not valid": "x"}))


def test_a_stopped_controller_makes_the_engine_unavailable(
    engine_b: SlurmEngine, site_b: SlurmCluster
) -> None:
    handle = engine_b.submit(command_job(30, "sleep", "300"))
    wait_for(engine_b, 30, handle, {JobState.RUNNING})
    site_b.stop_controller()
    try:
        with pytest.raises(EngineUnavailable, match="siteb"):
            engine_b.poll({30: handle})
        with pytest.raises(EngineUnavailable, match="Unable to contact slurm controller"):
            engine_b.submit(command_job(31, "true"))
        with pytest.raises(EngineUnavailable):
            engine_b.cancel(handle)
    finally:
        site_b.start_controller()
    # Back: the job survived the controller's restart, and the engine works again.
    assert engine_b.poll({30: handle})[30].state == JobState.RUNNING
    engine_b.cancel(handle)
    assert wait_for(engine_b, 30, handle).state == JobState.CANCELLED
    again = engine_b.submit(command_job(31, "true"))
    assert wait_for(engine_b, 31, again).state == JobState.COMPLETED


def test_zz_a_job_over_its_time_limit_times_out(
    engine_a: SlurmEngine, time_limit_job: tuple[int, str]
) -> None:
    job_id, handle = time_limit_job
    done = wait_for(engine_a, job_id, handle, timeout_s=150)
    assert done.state == JobState.TIMED_OUT, done
    assert done.started_at is not None and done.ended_at is not None
    assert (done.ended_at - done.started_at).total_seconds() >= 60
    assert len(done.gpu_seconds) == 1
