"""A new user's first hour: the commands the README names do what it says, against a real
server, and say plainly when there is nothing to show or nothing to do."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest

from fabriek.cli.usage import calendar_month, calendar_year
from fabriek.services.demo.seed import demo_token
from tests.jobs_helpers import submit, wait_for
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


def finished(api: httpx.Client, command: list[str], **body: object) -> int:
    job = submit(api, project="dutch-llm", command=command, time_limit="5m", **body)
    wait_for(api, job["id"])
    return int(job["id"])


def test_logs_of_a_failed_job_show_both_streams_labelled(
    env: dict[str, str], api: httpx.Client
) -> None:
    job_id = finished(api, ["sh", "-c", "echo working; echo 'out of memory' >&2; exit 3"])
    both = fabriek("logs", str(job_id), env=env).stdout
    assert both == ("==> standard output <==\nworking\n==> standard error <==\nout of memory\n")
    assert fabriek("logs", "-f", str(job_id), env=env).stdout == (
        "working\n==> standard error <==\nout of memory\n"
    )
    assert fabriek("logs", "--stderr", str(job_id), env=env).stdout == "out of memory\n"
    assert fabriek("logs", "--stdout", str(job_id), env=env).stdout == "working\n"
    only_err = finished(api, ["sh", "-c", "echo 'no such file' >&2; exit 1"])
    assert fabriek("logs", str(only_err), env=env).stdout == (
        "==> standard error <==\nno such file\n"
    )
    one_line_error(fabriek("logs", "--stdout", "--stderr", "1", env=env, check=False), 2)


def test_logs_of_an_ended_job_without_output_say_so(env: dict[str, str], api: httpx.Client) -> None:
    job_id = finished(api, ["true"])
    result = fabriek("logs", str(job_id), env=env)
    assert result.stdout == ""
    assert result.stderr.strip() == f"job {job_id} ended (completed) without output"
    followed = fabriek("logs", "-f", str(job_id), env=env)
    assert followed.stderr.strip() == f"job {job_id} ended (completed) without output"
    quiet = finished(api, ["sh", "-c", "echo fine"])
    result = fabriek("logs", "--stderr", str(quiet), env=env)
    assert result.stderr.strip() == f"job {quiet} ended (completed) without standard error"


def test_cancelling_an_ended_job_says_so_and_exits_1(
    env: dict[str, str], api: httpx.Client
) -> None:
    job_id = finished(api, ["true"])
    line = one_line_error(fabriek("cancel", str(job_id), env=env, check=False), 1)
    assert line == f"fabriek: job {job_id} has already ended (completed): nothing to cancel"
    assert wait_for(api, job_id)["state"] == "completed"
    waiting = submit(api, project="dutch-llm", command=["true"], gpus=8, gpu_type="h200",
                     time_limit="5m", earliest_start="2999-01-01T00:00:00Z")  # fmt: skip
    both = fabriek("cancel", str(waiting["id"]), str(job_id), env=env, check=False)
    assert both.stdout == f"Job {waiting['id']}: cancelled\n"
    assert f"job {job_id} has already ended" in one_line_error(both, 1)


def test_jobs_lists_waiting_and_running_like_squeue(env: dict[str, str], api: httpx.Client) -> None:
    done = finished(api, ["true"])
    waiting = submit(api, project="dutch-llm", command=["true"], name="n" * 60,
                     time_limit="5m", earliest_start="2999-01-01T00:00:00Z")  # fmt: skip
    table = fabriek("jobs", env=env).stdout
    assert str(waiting["id"]) in table and f" {done} " not in table
    assert "waiting and running only (--all for finished jobs too)" in table
    assert "n" * 60 in table  # into a pipe nothing is cut
    history = fabriek("jobs", "--all", env=env).stdout
    assert f" {done} " in history and "--all" not in history
    listed = json.loads(fabriek("jobs", "--all", "--json", env=env).stdout)
    total = len(json.loads(fabriek("jobs", "--all", "--json", "--limit", "1000", env=env).stdout))
    assert len(listed) == min(total, 100)
    cut = fabriek("jobs", "--all", "--limit", "1", env=env).stdout
    assert re.search(rf"showing 1 of {total:,} jobs \(--limit for more\)", cut), cut
    assert str(done) in fabriek("jobs", "--state", "completed", env=env).stdout


def test_usage_of_last_month_is_that_month(env: dict[str, str]) -> None:
    """The README's `usage --month last` works whenever it is run: the demo follows the clock."""
    for today, last_month, this_month in [
        (date(2026, 1, 5), "2025-12", "2026-01"),
        (date(2026, 3, 31), "2026-02", "2026-03"),
        (date(2026, 12, 1), "2026-11", "2026-12"),
    ]:
        assert calendar_month("last", today) == last_month
        assert calendar_month("this", today) == this_month
        assert calendar_year("last", today) == str(today.year - 1)
        assert calendar_year("this", today) == str(today.year)
    assert calendar_month("2025-03", date.today()) == "2025-03"
    assert calendar_month(None, date.today()) is None and calendar_year(None, date.today()) is None
    last = calendar_month("last", datetime.now(UTC).date())
    named = fabriek("usage", "--by", "province", "--month", "last", "--json", env=env).stdout
    dated = fabriek("usage", "--by", "province", "--month", str(last), "--json", env=env).stdout
    assert json.loads(named) == json.loads(dated)
    line = one_line_error(fabriek("usage", "--month", "lately", env=env, check=False), 2)
    assert "'lately' is not a month like 2025-03" in line


def test_a_script_asking_for_its_own_output_file_is_told_where_output_goes(
    env: dict[str, str], tmp_path: Path
) -> None:
    # Refused before issue 18; now set aside with a note that names the line (real
    # scripts carry --output, and where output goes does not change what a job computes).
    script = tmp_path / "job.sbatch"
    script.write_text("#!/bin/bash\n#SBATCH --gpus=1\n#SBATCH --output=%j.log\nhostname\n")
    done = fabriek("submit", str(script), env=env)
    assert done.stdout.startswith("Submitted job ")
    (line,) = done.stderr.splitlines()
    assert line.startswith("note: line 3: --output=%j.log set aside: Fabriek keeps the job's")
    assert "`fabriek logs JOB`" in line
