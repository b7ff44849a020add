"""The pure side of the slurm engine, on output captured from real Slurm 22.05 daemons.

`tests/slurm/data/` was written by `python -m tests.slurm.capture_data` (which lists what
each job did); no daemon is needed here. Later Slurm versions print numbers as
{"set", "number"} objects and states as lists: those cases are written out by hand below,
from the shape of Slurm's OpenAPI v0.0.40 schema.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fabriek.domain.job_states import JobState
from fabriek.engines.slurm_parse import (
    SlurmJob,
    SlurmOutputError,
    exit_code,
    gpu_count_from_tres,
    map_state,
    observe,
    parse_squeue_json,
    slurm_job_gone,
    slurm_unreachable,
    tagged_job_id,
    tagged_jobs,
)
from fabriek.engines.slurm_scontrol import expand_hostlist, parse_scontrol_oneliner

DATA = Path(__file__).parent / "data"
NOW = datetime.fromtimestamp(1795922500, UTC)  # a few seconds after the capture's jobs began


def by_tag(label: str) -> dict[int, SlurmJob]:
    jobs = parse_squeue_json((DATA / f"squeue_22.05_{label}.json").read_text())
    return dict(tagged_jobs(jobs, "fabriek"))


@pytest.mark.parametrize("label", ["active", "finished"])
def test_squeue_json_and_scontrol_text_read_the_same(label: str) -> None:
    from_json = parse_squeue_json((DATA / f"squeue_22.05_{label}.json").read_text())
    from_text = parse_scontrol_oneliner((DATA / f"scontrol_22.05_{label}.txt").read_text())
    assert len(from_json) >= 8
    assert from_json == from_text


def test_jobs_while_they_run_and_wait() -> None:
    jobs = {i: observe(j, i, NOW) for i, j in by_tag("active").items()}
    two_nodes = jobs[106]
    assert two_nodes.state == JobState.RUNNING and two_nodes.exit_code is None
    assert sorted(two_nodes.gpu_seconds) == [
        "capturen1:0", "capturen1:1", "capturen2:0", "capturen2:1"
    ]  # fmt: skip
    assert set(two_nodes.gpu_seconds.values()) == {6.0}
    assert jobs[104].gpu_seconds == {"3": 6.0}  # the index Slurm gave it
    assert jobs[105].gpu_seconds == {"2": 6.0, "3": 6.0}
    assert (jobs[101].state, jobs[101].exit_code) == (JobState.COMPLETED, 0)
    assert (jobs[102].state, jobs[102].exit_code, jobs[102].reason) == (
        JobState.FAILED, 3, "exit code 3"
    )  # fmt: skip
    assert (jobs[103].state, jobs[103].exit_code) == (JobState.FAILED, 137)
    assert jobs[103].reason == "killed by signal 9 (JobLaunchFailure)"
    waiting = jobs[107]
    assert waiting.state == JobState.PENDING and waiting.reason == "waiting in Slurm (Resources)"
    # Slurm forecasts a start time for a waiting job; it is not a start.
    assert waiting.started_at is None and waiting.gpu_seconds == {}
    assert jobs[108].reason == "waiting in Slurm (JobHeldUser)"


def test_jobs_after_they_ended() -> None:
    raw = by_tag("finished")
    jobs = {i: observe(j, i, NOW) for i, j in raw.items()}
    timed_out = jobs[104]
    assert timed_out.state == JobState.TIMED_OUT and timed_out.exit_code == 128 + 15
    assert timed_out.started_at and timed_out.ended_at
    assert timed_out.ended_at - timed_out.started_at == timedelta(seconds=88)
    # Slurm dropped the GPU index; the engine passes the one it saw while the job ran.
    assert timed_out.gpu_seconds == {"0": 88.0}
    assert observe(raw[104], 104, NOW, ("3",)).gpu_seconds == {"3": 88.0}
    assert jobs[105].state == JobState.CANCELLED and jobs[105].gpu_seconds == {"0": 4.0, "1": 4.0}
    for never_ran in (jobs[107], jobs[108]):
        assert never_ran.state == JobState.CANCELLED
        assert never_ran.started_at is None and never_ran.exit_code is None
        assert never_ran.ended_at is not None and never_ran.gpu_seconds == {}


def test_untagged_jobs_are_not_fabriek_jobs() -> None:
    jobs = parse_squeue_json((DATA / "squeue_22.05_finished.json").read_text())
    assert len(jobs) == 10 and len(by_tag("finished")) == 8
    assert dict(tagged_jobs(jobs, "other")) == {}


@pytest.mark.parametrize(
    ("comment", "expected"),
    [("fabriek:12", 12), (" fabriek:12 ", 12), ("fabriek:12 x", None), ("fabriek:", None),
     ("other:12", None), ("fabriek:-1", None), ("", None)],
)  # fmt: skip
def test_tags(comment: str, expected: int | None) -> None:
    assert tagged_job_id(comment, "fabriek") == expected


def test_a_controller_that_cannot_be_reached_is_not_an_empty_queue() -> None:
    with pytest.raises(SlurmOutputError, match="Failed while looking for jobs"):
        parse_squeue_json((DATA / "squeue_22.05_controller_down.json").read_text())
    with pytest.raises(SlurmOutputError):
        parse_squeue_json("squeue: error: something")
    with pytest.raises(SlurmOutputError):
        parse_squeue_json('{"meta": {}}')


def test_what_failing_commands_said() -> None:
    down = (DATA / "sbatch_controller_down.txt").read_text()
    refused = (DATA / "sbatch_rejected.txt").read_text()
    assert slurm_unreachable(down) and not slurm_unreachable(refused)
    assert slurm_job_gone("scancel: error: Kill job error on job id 9: Invalid job id specified")
    assert not slurm_job_gone("scancel: error: Kill job error on job id 5: " + down)


@pytest.mark.parametrize(
    ("state", "flags", "expected"),
    [
        ("PENDING", (), JobState.PENDING),
        ("CONFIGURING", (), JobState.STARTING),
        ("RUNNING", ("CONFIGURING",), JobState.STARTING),
        ("RUNNING", (), JobState.RUNNING),
        ("COMPLETING", (), JobState.RUNNING),
        ("COMPLETED", ("COMPLETING",), JobState.RUNNING),
        ("COMPLETED", (), JobState.COMPLETED),
        ("FAILED", (), JobState.FAILED),
        ("CANCELLED", (), JobState.CANCELLED),
        ("TIMEOUT", (), JobState.TIMED_OUT),
        ("DEADLINE", (), JobState.TIMED_OUT),
        ("PREEMPTED", (), JobState.PREEMPTED),
        ("NODE_FAIL", (), JobState.FAILED),
        ("OUT_OF_MEMORY", (), JobState.FAILED),
        ("BOOT_FAIL", (), JobState.FAILED),
        ("REQUEUED", (), JobState.PENDING),
        ("PENDING", ("REQUEUED",), JobState.PENDING),
        ("REQUEUE_HOLD", (), JobState.PENDING),
        ("SUSPENDED", (), JobState.RUNNING),
        ("STOPPED", (), JobState.RUNNING),
        ("SIGNALING", (), JobState.RUNNING),
        ("POWER_UP_NODE", (), JobState.STARTING),
        ("RESV_DEL_HOLD", (), JobState.PENDING),
        ("REVOKED", (), JobState.LOST),
    ],
)
def test_every_slurm_state_has_a_fabriek_state(
    state: str, flags: tuple[str, ...], expected: JobState
) -> None:
    assert map_state(state, frozenset(flags))[0] == expected


def test_a_state_nobody_knows_is_never_an_ending() -> None:
    assert map_state("WEIRD_NEW", ran=False)[0] == JobState.PENDING
    assert map_state("WEIRD_NEW", ran=True) == (JobState.RUNNING, "unknown Slurm state WEIRD_NEW")


def test_reasons_say_why() -> None:
    assert map_state("NODE_FAIL", reason="NodeDown") == (
        JobState.FAILED, "a node of the job failed (NodeDown)"
    )  # fmt: skip
    assert map_state("OUT_OF_MEMORY")[1] == "out of memory"
    assert map_state("COMPLETED") == (JobState.COMPLETED, None)


@pytest.mark.parametrize(
    ("status", "code"), [(0, 0), (3 << 8, 3), (9, 137), (15, 143), (None, None)]
)
def test_wait_statuses_as_exit_codes(status: int | None, code: int | None) -> None:
    assert exit_code(status) == code


def newer_job(**fields: object) -> dict[str, object]:
    """A job as Slurm 23.11+ prints it (OpenAPI v0.0.40 shapes)."""
    job: dict[str, object] = {
        "job_id": 77,
        "name": "fabriek-5-x",
        "comment": "fabriek:5",
        "job_state": ["RUNNING"],
        "state_reason": "None",
        "exit_code": {"status": ["PENDING"], "return_code": {"set": False, "number": 0}},
        "start_time": {"set": True, "infinite": False, "number": 1795922400},
        "end_time": {"set": True, "infinite": False, "number": 1795926000},
        "nodes": "gpu07",
        "node_count": {"set": True, "infinite": False, "number": 1},
        "gres_detail": ["gpu:h100:2(IDX:4-5)"],
        "tres_per_node": "gres/gpu:h100:2",
    }
    return {**job, **fields}


def test_the_newer_json_shapes() -> None:
    text = json.dumps({"jobs": [newer_job()], "errors": [], "warnings": []})
    (job,) = parse_squeue_json(text)
    obs = observe(job, 5, NOW)
    assert (job.handle, obs.state, obs.exit_code) == ("77", JobState.RUNNING, None)
    assert obs.gpu_seconds == {"4": 100.0, "5": 100.0}
    ended = newer_job(
        job_state=["FAILED"],
        state_reason="NonZeroExitCode",
        exit_code={"status": ["EXITED"], "return_code": {"set": True, "number": 2}},
        end_time={"set": True, "infinite": False, "number": 1795922450},
        gres_detail=[],
    )
    killed = newer_job(
        job_id=78,
        job_state=["CANCELLED"],
        exit_code={"status": ["SIGNALED"], "signal": {"id": {"set": True, "number": 9}}},
    )
    done, gone = parse_squeue_json(json.dumps({"jobs": [ended, killed]}))
    assert observe(done, 5, NOW).exit_code == 2 and observe(done, 5, NOW).reason == "exit code 2"
    assert observe(done, 5, NOW).gpu_seconds == {"0": 50.0, "1": 50.0}
    assert observe(gone, 5, NOW).exit_code == 137
    completing = newer_job(job_state=["COMPLETED", "COMPLETING"])
    (last,) = parse_squeue_json(json.dumps({"jobs": [completing]}))
    assert observe(last, 5, NOW).state == JobState.RUNNING
    broken = {"jobs": [], "errors": [{"error": "Unable to contact slurm controller"}]}
    with pytest.raises(SlurmOutputError, match="Unable to contact"):
        parse_squeue_json(json.dumps(broken))


@pytest.mark.parametrize(
    ("tres_node", "tres_job", "nodes", "count"),
    [("gres:gpu:h100:2", "", 2, 4), ("gres/gpu:2", "", 1, 2), ("gres/gpu=3", "", 1, 3),
     ("", "gres:gpu:h100:3", 2, 3), ("", "", 1, 0), ("gres:shard:2", "", 1, 0)],
)  # fmt: skip
def test_gpu_counts_from_requests(tres_node: str, tres_job: str, nodes: int, count: int) -> None:
    assert gpu_count_from_tres(tres_node, tres_job, nodes) == count


@pytest.mark.parametrize(
    ("text", "names"),
    [("gpu[01-03]", ["gpu01", "gpu02", "gpu03"]), ("a,b", ["a", "b"]),
     ("n[1,3-4],login", ["n1", "n3", "n4", "login"]), ("x[1-2]-ib", ["x1-ib", "x2-ib"]),
     ("single", ["single"]), ("", [])],
)  # fmt: skip
def test_hostlists(text: str, names: list[str]) -> None:
    assert expand_hostlist(text) == names
