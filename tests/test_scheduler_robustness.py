"""The robustness benchmark's quick mode: the report's shape and its invariants."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _trace(path: Path) -> None:
    """300 jobs of three tenants, heavy-tailed run times, mostly one GPU."""
    rng = random.Random(7)
    lines = ["job_id,submit_time_s,duration_s,num_gpus,tenant"]
    t = 0.0
    for i in range(300):
        t += rng.expovariate(1 / 120)
        duration = round(rng.lognormvariate(6.5, 1.6), 1)
        gpus = rng.choice((1, 1, 1, 1, 2, 4, 8, 16))
        lines.append(f"j{i},{t:.1f},{duration},{gpus},{rng.choice('abc')}")
    path.write_text("\n".join(lines) + "\n")


def test_quick_mode_reports_every_setting_and_keeps_the_invariants(tmp_path: Path) -> None:
    trace, out = tmp_path / "trace.csv", tmp_path / "report.json"
    _trace(trace)
    cmd = [sys.executable, str(ROOT / "bench" / "scheduler_robustness.py"), "--quick"]
    cmd += ["--trace", str(trace), "--json", str(out), "--processes", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr
    assert "Held-back windows" in done.stdout and "Tuning windows" in done.stdout
    report = json.loads(out.read_text())
    records, ratios = report["records"], report["ratios"]
    # 3 windows x 3 estimate settings x 1 load x 3 policies; one tuning window.
    assert len(report["tune"]) == 1
    assert len(records) == 27
    assert {r["policy"] for r in records} == {"backfill", "fabriek", "sjf-aged"}
    assert {r["estimate"] for r in records} == {"exact", "2x", "random 1-5x"}
    for r in records:
        assert r["all_started"], r
        assert 0.0 < r["utilization"] <= 1.0
        assert r["jobs"] + r["skipped"] == 100
    # Every policy but backfill is compared with backfill on every window and setting.
    assert len(ratios) == 18
    for r in ratios:
        assert {"jct", "bsld", "util", "max_wait"} <= r.keys()
        assert all(r[k] >= 0 for k in ("jct", "bsld", "util", "max_wait"))
