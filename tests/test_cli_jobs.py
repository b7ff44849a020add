"""The job commands as a Slurm user would use them, against a real server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from fabriek.services.demo.seed import demo_token
from tests.jobs_helpers import wait_for
from tests.servers import LiveServer
from tests.test_cli import fabriek, one_line_error

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def env(server: LiveServer, tmp_path: Path) -> dict[str, str]:
    return {"FABRIEK_URL": server.url, "FABRIEK_TOKEN": demo_token("maria").token,
            "FABRIEK_CONFIG_DIR": str(tmp_path)}  # fmt: skip


@pytest.fixture
def api(server: LiveServer) -> httpx.Client:
    headers = {"Authorization": f"Bearer {demo_token('maria').token}"}
    return httpx.Client(base_url=server.url, headers=headers, timeout=30)


def test_run_logs_jobs_and_job(env: dict[str, str], api: httpx.Client) -> None:
    out = fabriek("run", "--gpus", "2", "--gpu-type", "h100", "--time", "1h", "--",
                  "sh", "-c", "echo gpus=$CUDA_VISIBLE_DEVICES; echo bye", env=env).stdout  # fmt: skip
    job_id = int(re.fullmatch(r"Submitted job (\d+)\n", out).group(1))  # type: ignore[union-attr]
    followed = fabriek("logs", "-f", str(job_id), env=env).stdout
    assert followed.startswith("gpus=") and followed.endswith("bye\n")
    assert len(followed.splitlines()[0].removeprefix("gpus=").split(",")) == 2
    wait_for(api, job_id)
    listed = json.loads(fabriek("jobs", "--json", "--state", "completed", env=env).stdout)
    assert job_id in [j["id"] for j in listed]
    table = fabriek("jobs", "--all", env=env).stdout  # finished: history, as in sacct
    assert "JOBID" in table and str(job_id) in table
    shown = json.loads(fabriek("job", str(job_id), "--json", env=env).stdout)
    assert shown["state"] == "completed" and shown["events"][-1]["to_state"] == "completed"
    assert "History" in fabriek("job", str(job_id), env=env).stdout


def test_submit_a_batch_script_and_cancel(
    env: dict[str, str], tmp_path: Path, api: httpx.Client
) -> None:
    script = tmp_path / "train.sbatch"
    script.write_text(
        "#!/bin/bash\n#SBATCH --job-name=long\n#SBATCH --gpus=1\n#SBATCH -t 10\nsleep 120\n"
    )
    job = json.loads(fabriek("submit", str(script), "--json", env=env).stdout)
    assert job["name"] == "long" and job["state"] == "pending" and job["time_limit_s"] == 600
    wait_for(api, job["id"], {"running"})
    assert "cancel" in fabriek("cancel", str(job["id"]), env=env).stdout
    assert wait_for(api, job["id"])["state"] == "cancelled"


def test_bad_jobs_are_one_line_and_exit_2(env: dict[str, str], tmp_path: Path) -> None:
    for args in [
        ["run", "--gpu-type", "tpu9", "--", "true"],
        ["run", "--gpus", "9999", "--", "true"],
        ["run", "--time", "forever", "--", "true"],
        ["run", "--time", "400-00:00:00", "--", "true"],
        ["run"],
        ["submit", str(tmp_path / "missing.sbatch")],
    ]:
        one_line_error(fabriek(*args, env=env, check=False), 2)
    bad = tmp_path / "bad.sbatch"
    bad.write_text("#!/bin/bash\n#SBATCH --gres=gpu:h100:lots\nhostname\n")
    line = one_line_error(fabriek("submit", str(bad), env=env, check=False), 2)
    assert "line 2" in line
    one_line_error(fabriek("cancel", "999999", env=env, check=False), 1)


def test_names_that_look_like_rich_markup_show_as_typed(
    env: dict[str, str], api: httpx.Client
) -> None:
    # Rich would read these as tags (recolour the rest of the table, or refuse `[/]` with
    # nothing to close) or as an emoji code. They are names, shown as the user typed them.
    names = ["[bold]x[/]", "[/]", "[red]y", ":rocket:"]
    ids = []
    for name in names:
        out = fabriek("run", "--name", name, "--", "true", env=env).stdout
        ids.append(int(re.fullmatch(r"Submitted job (\d+)\n", out).group(1)))  # type: ignore[union-attr]
    for job_id in ids:
        wait_for(api, job_id)
    table = fabriek("jobs", "--all", env=env).stdout
    for name in names:
        assert f" {name} " in table, table
    assert "[bold]x[/]" in fabriek("job", str(ids[0]), env=env).stdout
