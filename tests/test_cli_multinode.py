"""`fabriek run --nodes N --gpus-per-node G`: one task per node, each line marked with its
node; GPUs that do not fit the nodes are one line and exit 2."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.jobs_helpers import wait_for
from tests.test_cli import fabriek, one_line_error
from tests.test_cli_jobs import api, env  # noqa: F401  (fixtures)

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_run_on_two_nodes_with_gpus_per_node(env: dict[str, str], api: httpx.Client) -> None:  # noqa: F811
    out = fabriek("run", "--nodes", "2", "--gpus-per-node", "1", "--gpu-type", "h100", "--",
                  "sh", "-c", 'echo "$NODE_RANK/$NNODES gpus=$CUDA_VISIBLE_DEVICES"',
                  env=env).stdout  # fmt: skip
    job_id = int(re.fullmatch(r"Submitted job (\d+)\n", out).group(1))  # type: ignore[union-attr]
    done = wait_for(api, job_id)
    assert (done["state"], done["nodes"], done["gpus"]) == ("completed", 2, 2), done
    logs = sorted(fabriek("logs", str(job_id), env=env).stdout.splitlines())
    assert [line.split(" gpus=")[0] for line in logs] == ["[node 0] 0/2", "[node 1] 1/2"]
    gpus = [line.split(" gpus=")[1] for line in logs]
    assert all(len(g.split(",")) == 1 for g in gpus) and len(set(gpus)) == 2  # one each


def test_gpus_that_do_not_fit_the_nodes_are_one_line(env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    line = one_line_error(
        fabriek("run", "-N", "2", "--gpus", "3", "--", "true", env=env, check=False), 2
    )
    assert "3 GPUs do not split evenly over 2 nodes" in line
