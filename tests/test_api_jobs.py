"""Jobs end to end on the local engine, through the HTTP API: run, watch, logs, cancel,
time-out, failure, batch scripts, and bad input refused before anything is queued."""

from __future__ import annotations

from tests.conftest import Client, problem_of
from tests.jobs_helpers import py, submit, wait_for


def test_a_job_runs_to_completion_with_output_and_history(client: Client) -> None:
    maria = client("maria")
    job = submit(
        maria,
        project="dutch-llm",
        command=py("print('hello from the factory')"),
        gpus=1,
        gpu_type="h100",
    )
    assert job["state"] == "pending" and job["project"] == "dutch-llm" and job["user"] == "maria"
    done = wait_for(maria, job["id"])
    assert done["state"] == "completed" and done["exit_code"] == 0
    assert done["site"] == "amsterdam" and done["started_at"] and done["ended_at"]
    assert maria.get(f"/api/v1/jobs/{job['id']}/logs").text == "hello from the factory\n"
    events = maria.get(f"/api/v1/jobs/{job['id']}/events").json()
    states = [e["to_state"] for e in events]
    assert states[0] == "pending" and states[1] == "starting" and states[-1] == "completed"
    assert all(e["at"] for e in events)


def test_gpus_are_given_through_cuda_visible_devices(client: Client) -> None:
    maria = client("maria")
    job = submit(maria, command=["sh", "-c", "echo $CUDA_VISIBLE_DEVICES"], gpus=2, gpu_type="h200")
    assert wait_for(maria, job["id"])["site"] == "groningen"
    visible = maria.get(f"/api/v1/jobs/{job['id']}/logs").text.strip().split(",")
    assert len(visible) == 2 and len(set(visible)) == 2


def test_failure_keeps_exit_code_and_stderr(client: Client) -> None:
    maria = client("maria")
    job = submit(maria, command=py("import sys; sys.stderr.write('boom'); sys.exit(3)"))
    done = wait_for(maria, job["id"])
    assert done["state"] == "failed" and done["exit_code"] == 3
    assert maria.get(f"/api/v1/jobs/{job['id']}/logs?stream=stderr").text == "boom"


def test_time_limit_is_enforced(client: Client) -> None:
    maria = client("maria")
    job = submit(maria, command=py("import time; time.sleep(60)"), time_limit=2)
    done = wait_for(maria, job["id"], timeout=40)
    assert done["state"] == "timed-out"


def test_cancel_a_running_and_a_waiting_job(client: Client) -> None:
    maria = client("maria")
    job = submit(maria, command=py("import time; print('up', flush=True); time.sleep(120)"))
    wait_for(maria, job["id"], {"running"})
    problem_of(client("mo").post(f"/api/v1/jobs/{job['id']}/cancel"), 404)
    # A started job's cancel is asked of its cluster: accepted (202), cancelled once it ends.
    assert maria.post(f"/api/v1/jobs/{job['id']}/cancel").status_code == 202
    assert wait_for(maria, job["id"])["state"] == "cancelled"
    later = submit(maria, command=["true"], earliest_start="2099-01-01T00:00:00Z")
    waiting = wait_for(maria, later["id"], {"pending"})
    cancelled = maria.post(f"/api/v1/jobs/{later['id']}/cancel").json()
    assert cancelled["state"] == "cancelled"
    assert waiting["state"] == "pending"


def test_not_before_start_time_is_the_reason_shown(client: Client) -> None:
    maria = client("maria")
    job = submit(maria, command=["true"], earliest_start="2099-01-01T00:00:00Z")
    import time

    deadline = time.monotonic() + 10
    while "NotBeforeStartTime" not in str(maria.get(f"/api/v1/jobs/{job['id']}").json()["reason"]):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    maria.post(f"/api/v1/jobs/{job['id']}/cancel")


def test_follow_streams_until_the_job_ends(client: Client) -> None:
    maria = client("maria")
    code = "import time\nfor i in range(3):\n    print(i, flush=True); time.sleep(0.5)"
    job = submit(maria, command=py(code))
    with maria.stream("GET", f"/api/v1/jobs/{job['id']}/logs", params={"follow": True}) as r:
        text = "".join(r.iter_text())
    assert text == "0\n1\n2\n"
    assert maria.get(f"/api/v1/jobs/{job['id']}").json()["state"] == "completed"


def test_a_batch_script_is_parsed_and_honoured(client: Client) -> None:
    maria = client("maria")
    script = "#!/bin/bash\n#SBATCH --job-name=train\n#SBATCH --gres=gpu:a100:2\n#SBATCH --time=00:10:00\n#SBATCH -c 4\necho $CUDA_VISIBLE_DEVICES\n"
    job = submit(maria, script=script)
    assert (job["name"], job["gpus"], job["gpu_type"], job["time_limit_s"], job["cpus"]) == (
        "train",
        2,
        "a100",
        600,
        4,
    )
    done = wait_for(maria, job["id"])
    assert done["state"] == "completed" and done["site"] == "amsterdam"
    assert len(maria.get(f"/api/v1/jobs/{job['id']}/logs").text.strip().split(",")) == 2


def test_listing_filters_and_isolation(client: Client) -> None:
    maria = client("maria")
    job = submit(maria, project="photonic-inspect", command=["true"])
    wait_for(maria, job["id"])
    mine = maria.get("/api/v1/jobs", params={"project": "photonic-inspect"}).json()
    assert job["id"] in [j["id"] for j in mine["items"]]
    done = maria.get(
        "/api/v1/jobs", params={"state": ["completed", "failed"], "limit": 1000}
    ).json()
    assert all(j["state"] in {"completed", "failed"} for j in done["items"])
    assert job["id"] not in [
        j["id"] for j in client("mo").get("/api/v1/jobs?limit=1000").json()["items"]
    ]
    assert job["id"] in [
        j["id"] for j in client("hanna").get("/api/v1/jobs?limit=1000").json()["items"]
    ]
    problem_of(client("mo").get(f"/api/v1/jobs/{job['id']}"), 404)
    problem_of(client("mo").get(f"/api/v1/jobs/{job['id']}/logs"), 404)
    problem_of(maria.get("/api/v1/jobs?state=dreaming"), 422)


def test_bad_jobs_are_refused_before_anything_is_queued(client: Client) -> None:
    maria = client("maria")
    before = maria.get("/api/v1/jobs").json()["total"]
    cases = [
        ("gpu_type", {"command": ["true"], "gpus": 1, "gpu_type": "tpu9"}),
        ("gpus", {"command": ["true"], "gpus": 4096, "gpu_type": "h100"}),
        ("time_limit", {"command": ["true"], "time_limit": "400-00:00:00"}),
        ("time_limit", {"command": ["true"], "time_limit": "soon"}),
        ("script", {"script": "#!/bin/bash\n#SBATCH --gres=gpu:h100:abc\nhostname\n"}),
        ("command", {"command": []}),
        ("command", {"command": [""]}),
        ("project", {"command": ["true"], "project": "legal-nl"}),
    ]
    for field, body in cases:
        response = maria.post("/api/v1/jobs", json=body)
        if field == "project":
            problem_of(response, 404)
            continue
        problem = problem_of(response, 422)
        fields = [e["field"] for e in problem.get("errors", [])]  # type: ignore[attr-defined]
        assert field in fields or field in str(problem["detail"]), (field, problem)
    problem_of(maria.post("/api/v1/jobs", json={"command": ["true"], "script": "echo"}), 422)
    problem_of(maria.post("/api/v1/jobs", json={"command": ["true"], "gpus": -1}), 422)
    problem_of(maria.post("/api/v1/jobs", json={"command": ["true"], "priority": 9}), 422)
    assert maria.get("/api/v1/jobs").json()["total"] == before
    problem_of(client("rita").post("/api/v1/jobs", json={"command": ["true"]}), 422)
