"""`fabriek sim` replays a trace with the production scheduler; bad traces are one line, exit 2."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

from tests.test_cli import fabriek, one_line_error

TRACE = "job_id,submit_time_s,duration_s,num_gpus,tenant\n" + "\n".join(
    f"j{i},{i * 10},{100 + (i % 7) * 50},{1 + i % 4},t{i % 3}" for i in range(60)
)


def test_sim_replays_and_reports(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text(TRACE + "\nbig,5,10,64,t0\n")
    results = {}
    for policy in ["fifo", "backfill", "fabriek"]:
        out = fabriek("sim", "--trace", str(trace), "--nodes", "2", "--gpus-per-node", "4",
                      "--policy", policy, "--json", env={})  # fmt: skip
        results[policy] = json.loads(out.stdout)
    for r in results.values():
        assert r["jobs"] == 60 and r["skipped"] == 1
        assert 0 < r["utilization"] <= 1
        assert r["avg_jct_s"] >= r["lower_bound_avg_jct_s"]
        assert r["makespan_s"] >= r["lower_bound_makespan_s"]
    again = fabriek("sim", "--trace", str(trace), "--nodes", "2", "--gpus-per-node", "4",
                    "--json", env={})  # fmt: skip
    assert json.loads(again.stdout) == results["fabriek"]  # deterministic
    table = fabriek("sim", "--trace", str(trace), "--nodes", "2", "--gpus-per-node", "4", env={})
    assert "avg_jct_s" in table.stdout


def test_bad_traces_name_row_and_column(tmp_path: Path) -> None:
    cases = {
        "job_id,submit_time_s,num_gpus\n1,0,1\n": "duration_s",
        "job_id,submit_time_s,duration_s,num_gpus\n1,0,-5,1\n": "line 2",
        "job_id,submit_time_s,duration_s,num_gpus\n1,0,10,two\n": "num_gpus",
    }
    for text, expected in cases.items():
        trace = tmp_path / "bad.csv"
        trace.write_text(text)
        result = fabriek("sim", "--trace", str(trace), "--nodes", "1", "--gpus-per-node", "8",
                         env={}, check=False)  # fmt: skip
        assert expected in one_line_error(result, 2)


def on_a_terminal(*args: str) -> tuple[int, str]:
    """Run `fabriek` with a pseudo-terminal as its standard output and error."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "fabriek.main", *args], stdout=follower,
                            stderr=follower, env={**os.environ, "COLUMNS": "120"})  # fmt: skip
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closes when the command ends
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    return proc.wait(timeout=60), seen.decode(errors="replace")


def test_sim_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text(TRACE + "\n")
    args = ("sim", "--trace", str(trace), "--nodes", "2", "--gpus-per-node", "4")
    code, seen = on_a_terminal(*args)
    assert code == 0 and "Replaying" in seen and "jobs submitted" in seen and "avg_jct_s" in seen
    code, seen = on_a_terminal(*args, "--json")
    assert code == 0 and "Replaying" not in seen
    piped = fabriek(*args, env={})
    assert "Replaying" not in piped.stdout + piped.stderr
