"""Multi-node jobs through the API: --gpus-per-node, the rendezvous variables on the local
engine's simulated nodes, and multi-node batch scripts (`--ntasks`, `--account`, and the
refusal of `--gpus-per-task`)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Client, problem_of
from tests.jobs_helpers import submit, wait_for

LATER = "2099-01-01T00:00:00Z"  # queued, never started: only what was accepted is checked


def queued(c: Any, **body: Any) -> dict[str, Any]:
    """Submit a job that waits (it starts in 2099), and cancel it again."""
    job = submit(c, earliest_start=LATER, **body)
    assert c.post(f"/api/v1/jobs/{job['id']}/cancel").status_code == 200
    return job


def test_a_command_on_two_nodes_runs_once_per_node_with_its_variables(client: Client) -> None:
    maria = client("maria")
    show = 'echo "rank=$NODE_RANK of=$NNODES world=$WORLD_SIZE port=$MASTER_PORT"'
    job = submit(maria, command=["sh", "-c", show], nodes=2)
    done = wait_for(maria, job["id"])
    assert done["state"] == "completed", (
        done["reason"],
        maria.get(f"/api/v1/jobs/{job['id']}/logs?stream=stderr").text,
    )
    lines = sorted(maria.get(f"/api/v1/jobs/{job['id']}/logs").text.splitlines())
    assert [line.split(" port=")[0] for line in lines] == [
        "[node 0] rank=0 of=2 world=2",
        "[node 1] rank=1 of=2 world=2",
    ]


def test_a_node_failing_fails_the_job(client: Client) -> None:
    maria = client("maria")
    script = 'if [ "$NODE_RANK" = 1 ]; then exit 4; fi; sleep 600'
    job = submit(maria, command=["sh", "-c", script], nodes=3)
    done = wait_for(maria, job["id"])
    assert (done["state"], done["exit_code"]) == ("failed", 4), done


def test_gpus_per_node_gives_the_jobs_total(client: Client) -> None:
    maria = client("maria")
    job = queued(maria, command=["true"], nodes=2, gpus_per_node=4, gpu_type="h100")
    assert (job["nodes"], job["gpus"]) == (2, 8)
    same = queued(maria, command=["true"], nodes=2, gpus=8, gpus_per_node=4, gpu_type="h100")
    assert same["gpus"] == 8


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"nodes": 2, "gpus": 4, "gpus_per_node": 4}, "is 8 GPUs, but the job asks 4"),
        ({"nodes": 2, "gpus": 3}, "3 GPUs do not split evenly over 2 nodes"),
    ],
)
def test_gpus_that_do_not_fit_the_nodes_are_refused(
    client: Client, body: dict[str, Any], says: str
) -> None:
    response = client("maria").post("/api/v1/jobs", json={"command": ["true"], **body})
    assert says in problem_of(response, 422)["detail"]


MULTI_NODE = """#!/bin/bash
#SBATCH --job-name=llm
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --ntasks=8
#SBATCH --gpus-per-node=h100:4
#SBATCH --cpus-per-task=8
#SBATCH --time=1-00:00:00
{account}
srun torchrun --nnodes "$NNODES" --nproc-per-node 4 --rdzv-endpoint "$MASTER_ADDR:$MASTER_PORT" train.py
"""


def test_a_multi_node_script_is_accepted_as_written(client: Client) -> None:
    job = queued(client("maria"), script=MULTI_NODE.format(account=""))
    assert (job["name"], job["nodes"], job["gpus"], job["gpu_type"]) == ("llm", 2, 8, "h100")
    # A job's CPUs are per node: four tasks of eight CPUs each (counted per task before
    # issue 18, when Slurm gave the script's tasks four times what Fabriek counted).
    assert (job["cpus"], job["time_limit_s"]) == (32, 86400)


def test_the_scripts_account_names_the_project(client: Client) -> None:
    maria = client("maria")
    named = MULTI_NODE.format(account="#SBATCH -A photonic-inspect")
    assert queued(maria, script=named)["project"] == "photonic-inspect"
    both = queued(maria, script=named, project="photonic-inspect")
    assert both["project"] == "photonic-inspect"
    response = maria.post("/api/v1/jobs", json={"script": named, "project": "dutch-llm"})
    detail = problem_of(response, 422)["detail"]
    assert "--account names project photonic-inspect" in detail
    assert "submitted to project dutch-llm" in detail


def test_gpus_per_task_is_refused_saying_what_to_write(client: Client) -> None:
    script = (
        "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks=8\n#SBATCH --gpus-per-task=1\nsrun x\n"
    )
    response = client("maria").post("/api/v1/jobs", json={"script": script})
    detail = problem_of(response, 422)["detail"]
    assert detail.startswith("line 4: --gpus-per-task=1: not supported: Fabriek gives GPUs per")
    assert "--gpus-per-node=N" in detail and "--ntasks-per-node=N" in detail
