"""Multi-node jobs on the local engine: nodes simulated as process groups on this machine,
each with its rendezvous variables, started together and stopped together."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fabriek.domain.job_states import TERMINAL_STATES, JobState
from fabriek.domain.jobs import JobSpec
from fabriek.domain.rendezvous import rendezvous_port
from fabriek.engines.base import EngineJob, LogStream, Observation
from fabriek.engines.local import LocalEngine
from tests.test_local_engine import ALICE, make_engine

SHOW = 'echo "rank=$NODE_RANK of=$NNODES addr=$MASTER_ADDR port=$MASTER_PORT '
SHOW += 'world=$WORLD_SIZE local=$LOCAL_WORLD_SIZE per=$GPUS_PER_NODE gpus=$CUDA_VISIBLE_DEVICES"'


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[LocalEngine]:
    made = make_engine(tmp_path / "jobs", gpus=4)
    yield made
    for handle in made.known_jobs().values():  # leave no process behind
        made.cancel(handle)


def gang_job(job_id: int, script: str, *, nodes: int = 2, gpus: int = 0) -> EngineJob:
    spec = JobSpec(name=f"gang{job_id}", command=("bash", "-c", script), nodes=nodes, gpus=gpus)
    return EngineJob(job_id, spec, owner=ALICE)


def ended(engine: LocalEngine, handle: str, timeout: float = 30.0) -> Observation:
    """Poll until the job has ended (or give up, returning what was seen last)."""
    end = time.monotonic() + timeout
    while True:
        seen = engine.poll({int(handle): handle})[int(handle)]
        if seen.state in TERMINAL_STATES or time.monotonic() > end:
            return seen
        time.sleep(0.05)


def output(engine: LocalEngine, handle: str, stream: LogStream = LogStream.STDOUT) -> str:
    return engine.read_log(handle, stream).decode()


def test_every_node_gets_its_rendezvous_variables_and_its_share_of_the_gpus(
    engine: LocalEngine,
) -> None:
    handle = engine.submit(gang_job(12345, SHOW, nodes=2, gpus=4))
    seen = ended(engine, handle)
    assert (seen.state, seen.exit_code) == (JobState.COMPLETED, 0), output(engine, handle)
    lines = sorted(output(engine, handle).splitlines())
    port = rendezvous_port(12345)
    assert lines == [
        f"[node 0] rank=0 of=2 addr=127.0.0.1 port={port} world=4 local=2 per=2 gpus=0,1",
        f"[node 1] rank=1 of=2 addr=127.0.0.1 port={port} world=4 local=2 per=2 gpus=2,3",
    ]
    assert sorted(seen.gpu_seconds) == ["0", "1", "2", "3"]  # the job holds all four


def test_nodes_without_gpus_run_one_process_each(engine: LocalEngine) -> None:
    handle = engine.submit(gang_job(7, SHOW, nodes=3))
    assert ended(engine, handle).state == JobState.COMPLETED
    lines = sorted(output(engine, handle).splitlines())
    assert [line.split(" addr")[0] for line in lines] == [
        f"[node {r}] rank={r} of=3" for r in range(3)
    ]
    assert all("world=3 local=1 per=0 gpus=" in line for line in lines)


def test_each_line_says_which_node_wrote_it_on_both_streams(engine: LocalEngine) -> None:
    script = 'printf "one\\ntwo\\nno end of line"; echo "err $NODE_RANK" >&2'
    handle = engine.submit(gang_job(8, script))
    assert ended(engine, handle).state == JobState.COMPLETED
    out = output(engine, handle).splitlines()
    for rank in (0, 1):
        mine = [line for line in out if line.startswith(f"[node {rank}] ")]
        assert mine == [f"[node {rank}] one", f"[node {rank}] two", f"[node {rank}] no end of line"]
    err = sorted(output(engine, handle, LogStream.STDERR).splitlines())
    assert err == ["[node 0] err 0", "[node 1] err 1"]


def test_a_node_failing_fails_the_job_and_stops_the_others(engine: LocalEngine) -> None:
    # Node 1 fails once node 0 is up; node 0 would run for ten minutes unless stopped.
    script = (
        'if [ "$NODE_RANK" = 1 ]; then while [ ! -e "$HOME/up" ]; do sleep 0.05; done; exit 3; fi; '
        "trap 'echo node 0 stopped; exit 143' TERM; touch \"$HOME/up\"; sleep 600 & wait"
    )
    handle = engine.submit(gang_job(9, script))
    seen = ended(engine, handle)
    assert (seen.state, seen.exit_code) == (JobState.FAILED, 3), seen
    assert "[node 0] node 0 stopped" in output(engine, handle)
    err = output(engine, handle, LogStream.STDERR)
    assert "[fabriek] node 1 exited with code 3: stopping the other nodes" in err


def test_a_node_killed_by_a_signal_fails_the_job(engine: LocalEngine) -> None:
    script = 'if [ "$NODE_RANK" = 0 ]; then kill -KILL $$; fi; sleep 600'
    handle = engine.submit(gang_job(10, script, nodes=3))
    seen = ended(engine, handle)
    assert (seen.state, seen.exit_code) == (JobState.FAILED, 137), seen
    assert "node 0 exited with code 137" in output(engine, handle, LogStream.STDERR)


def test_cancel_stops_every_node(engine: LocalEngine, tmp_path: Path) -> None:
    script = "trap 'echo stopped $NODE_RANK; exit 143' TERM; echo up $NODE_RANK; sleep 600 & wait"
    handle = engine.submit(gang_job(11, script, nodes=2, gpus=2))
    end = time.monotonic() + 30
    while output(engine, handle).count(" up ") < 2:
        assert time.monotonic() < end, output(engine, handle)
        time.sleep(0.05)
    engine.cancel(handle)
    seen = ended(engine, handle)
    assert seen.state == JobState.CANCELLED, seen
    assert {"[node 0] stopped 0", "[node 1] stopped 1"} <= set(output(engine, handle).splitlines())
    assert engine.free_gpus() == (0, 1, 2, 3)


def test_a_program_that_does_not_exist_fails_the_job(engine: LocalEngine) -> None:
    spec = JobSpec(name="none", command=("no-such-program-here",), nodes=2)
    handle = engine.submit(EngineJob(13, spec, owner=ALICE))
    seen = ended(engine, handle)
    assert seen.state == JobState.FAILED
    assert "could not start 'no-such-program-here'" in output(engine, handle, LogStream.STDERR)
