"""`fabriek sim` with two checkouts, turn by turn: does the kept queue index decide anything
differently from plain lists, and what does it cost or save on ordinary traces?

Cuts windows from the shared Philly trace (a light one, a deep queue, limits of 1-5x the
run, jobs with 12 h of slack against NL carbon), runs each replay with `BEFORE/src` and
with this checkout's `src` (one virtual environment), checks that the JSON is
byte-identical, and prints a table of wall seconds.

    .venv/bin/python -m bench.sim_index --before BEFORE/src
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.api_load import machine_description

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TRACE = DATA / "traces" / "philly_2017.csv"
CARBON = DATA / "carbon" / "electricitymaps_NL_2021-2023_hourly.csv"
SRC = Path(__file__).resolve().parents[1] / "src"


def window(rows: list[dict[str, str]], out: Path, *, slack: bool, limits: bool) -> None:
    """Write ROWS as a trace starting at time 0; optionally half the jobs with 12 h of slack,
    or every limit 1-5x the run (seeded)."""
    rng = random.Random(7)
    t0 = float(rows[0]["submit_time_s"])
    with out.open("w", newline="") as f:
        columns = ["job_id", "submit_time_s", "duration_s", "num_gpus", "tenant"]
        columns += ["slack_s"] if slack else []
        columns += ["time_limit_s"] if limits else []
        writer = csv.writer(f)
        writer.writerow(columns)
        for r in rows:
            row: list[object] = [r["job_id"], float(r["submit_time_s"]) - t0, r["duration_s"]]
            row += [r["num_gpus"], r["tenant"]]
            if slack:
                row.append(43200 if rng.random() < 0.5 else "")
            if limits:
                row.append(float(r["duration_s"]) * rng.uniform(1, 5))
            writer.writerow(row)


def replays(tmp: Path) -> list[tuple[str, str, list[str]]]:
    rows = list(csv.DictReader(TRACE.open()))
    w1, w2, slack, w3 = (tmp / f"{n}.csv" for n in ("w1", "w2", "slack", "w3"))
    window(rows[20000:23000], w1, slack=False, limits=False)
    window(rows[50000:54000], w2, slack=False, limits=True)
    window(rows[60000:72000:6], slack, slack=True, limits=False)
    window(rows[70000:82000], w3, slack=False, limits=False)
    carbon = ["--carbon", str(CARBON)]
    runs = [("3,000 jobs, 40 nodes", p, ["--trace", str(w1), "--nodes", "40", "--policy", p])
            for p in ("fifo", "backfill", "fabriek", "sjf-aged")]  # fmt: skip
    runs += [
        ("4,000 jobs, 48 nodes, 3 sites", "fabriek", ["--trace", str(w2), "--nodes", "48",
                                                      "--sites", "3"]),
        ("4,000 jobs, 48 nodes, limits 3x", "sjf-aged", ["--trace", str(w2), "--nodes", "48",
                                                         "--policy", "sjf-aged",
                                                         "--overestimate", "3"]),
        ("2,000 jobs with slack, carbon, shifting", "fabriek",
         ["--trace", str(slack), "--nodes", "12", *carbon, "--start", "2022-03-01"]),
        ("the same, no shifting", "fabriek",
         ["--trace", str(slack), "--nodes", "12", *carbon, "--start", "2022-03-01",
          "--no-shift"]),
        ("the same, grid cap 40 kW", "fabriek",
         ["--trace", str(slack), "--nodes", "12", *carbon, "--start", "2022-08-01",
          "--grid-cap-kw", "40"]),
        ("12,000 jobs, 100 nodes (light)", "fabriek", ["--trace", str(w3), "--nodes", "100"]),
    ]  # fmt: skip
    runs += [("12,000 jobs, 30 nodes (deep queue)", p,
              ["--trace", str(w3), "--nodes", "30", "--policy", p])
             for p in ("fabriek", "backfill", "sjf-aged")]  # fmt: skip
    return runs


def sim(src: Path, args: list[str]) -> tuple[float, bytes]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, "-m", "fabriek.main", "sim", "--json", "--gpus-per-node", "8"]
    started = time.perf_counter()
    done = subprocess.run([*command, *args], env=env, capture_output=True, check=True)
    return time.perf_counter() - started, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the other checkout's src/")
    args = parser.parse_args()
    print("\n".join(machine_description()))
    print(f"Command: {' '.join(sys.argv)}\n")
    print("| replay | policy | before s | after s | after / before | output |")
    print("|---|---|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for label, policy, run_args in replays(Path(tmp)):
            before_s, before = sim(args.before.resolve(), run_args)
            after_s, after = sim(SRC, run_args)
            same = "identical" if before == after else "**different**"
            print(f"| {label} | {policy} | {before_s:.2f} | {after_s:.2f} "
                  f"| {after_s / before_s:.2f} | {same} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
