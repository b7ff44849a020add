"""Robustness of the queueing policies: many windows, sizes and estimate settings.

Replays disjoint windows of the shared trace with EASY backfill and the other policies,
on several cluster sizes per window (chosen so the offered load is about 0.7 to 0.95)
and with runtime estimates (time limits) that are exact, 2x and randomly 1-5x too long
(seeded). For every setting it reports the median and the worst, over the windows, of
each policy's ratio to backfill: average completion time, average bounded slowdown
(10 s bound), utilisation, and the longest wait. The windows are split, by the seed,
into tuning windows and held-back windows, reported apart: tune only on the former.
"JCT bound" is the mean run time over backfill's average JCT, "slowdown bound" 1 over
backfill's average bounded slowdown: no policy's ratio can go below them.

    .venv/bin/python bench/scheduler_robustness.py [--quick] [--json FILE]

The offered load of a window on G GPUs is the mean number of GPUs its jobs would keep
busy, if none ever waited, over the second half of its submission span (the first half
warms the empty cluster up), over G. Utilisation is as the
simulator defines it (busy GPU-seconds over the cluster's, first submission to last end).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from multiprocessing import Pool
from pathlib import Path

from fabriek.scheduler import Policy, SchedulerConfig, load_trace, run_simulation
from fabriek.scheduler.priority import PriorityWeights
from fabriek.scheduler.trace import TraceRow

ROOT = Path(__file__).resolve().parents[1]
TRACE = ROOT.parent / "shared" / "data" / "traces" / "philly_2017.csv"
GPUS_PER_NODE = 8
ESTIMATES = ("exact", "2x", "random 1-5x")
# (name, how to compare: the worst is the largest or the smallest ratio, the aim).
RATIOS = (
    ("jct", max, 0.75),
    ("bsld", max, 0.5),
    ("util", min, 1.0),
    ("max_wait", max, 1.5),
)


@dataclass(frozen=True, slots=True)
class Task:
    """One replay: a window of the trace on a cluster size, estimates and policy."""

    window: int
    load: float
    estimate: str
    policy: str
    nodes: int
    rows: tuple[TraceRow, ...]


def windows_of(rows: Sequence[TraceRow], count: int, jobs: int) -> list[list[TraceRow]]:
    """`count` disjoint windows of `jobs` consecutive jobs, spread evenly over the trace."""
    stride = len(rows) // count
    if stride < jobs:
        raise ValueError(f"{count} windows of {jobs} jobs do not fit in {len(rows)} jobs")
    return [list(rows[i * stride : i * stride + jobs]) for i in range(count)]


def offered_busy(window: Sequence[TraceRow]) -> float:
    """Mean GPUs busy over the second half of the window's submission span if no job ever
    waited. The first half warms the empty cluster up: in the trace, long jobs submitted
    before the window would already be running."""
    first, last = window[0].submit_time_s, window[-1].submit_time_s
    mid = (first + last) / 2
    span = max(last - mid, 1.0)
    used = 0.0
    for r in window:
        begin, end = max(r.submit_time_s, mid), min(r.submit_time_s + r.duration_s, last)
        if end > begin:
            used += r.num_gpus * (end - begin)
    return used / span


def nodes_for(window: Sequence[TraceRow], load: float) -> int:
    """Nodes that put the window's offered load at `load`, at least the largest job's."""
    largest = max(r.num_gpus for r in window)
    wanted = round(offered_busy(window) / load / GPUS_PER_NODE)
    return max(wanted, -(-largest // GPUS_PER_NODE), 1)


def with_estimates(window: Sequence[TraceRow], estimate: str, seed: int) -> list[TraceRow]:
    """The window with time limits: the duration times 1, 2 or a uniform 1-5 (seeded)."""
    rng = random.Random(seed)
    out = []
    for r in window:
        factor = 1.0 if estimate == "exact" else 2.0 if estimate == "2x" else rng.uniform(1, 5)
        out.append(replace(r, time_limit_s=max(1.0, r.duration_s * factor)))
    return out


def replay(task: Task) -> dict[str, object]:
    """Replay one task; its metrics, its wall time and the invariants' checks."""
    t0 = time.perf_counter()
    config = config_of(task.policy)
    result = run_simulation(
        task.rows, task.nodes, GPUS_PER_NODE, 1, overestimate=1.0, config=config
    )
    wall = time.perf_counter() - t0
    record = result.to_dict()
    record.pop("skipped_jobs")
    outcomes = result.outcomes
    record.update(
        policy=task.policy,
        window=task.window,
        load=task.load,
        estimate=task.estimate,
        replay_s=wall,
        # Every job that can run started, and ended no earlier than its start.
        all_started=len(outcomes) == result.jobs
        and len({o.job_id for o in outcomes}) == len(outcomes)
        and all(o.submit_s <= o.start_s <= o.end_s for o in outcomes),
    )
    return record


def config_of(spec: str) -> SchedulerConfig:
    """A policy by name, with weights after a colon for trying variants:
    `sjf-aged:stretch=2,sticky=0`."""
    name, _, rest = spec.partition(":")
    weights = PriorityWeights()
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        kind = type(getattr(weights, key))
        weights = replace(weights, **{key: bool(int(value)) if kind is bool else kind(value)})
    return SchedulerConfig(policy=Policy(name), weights=weights)


def tasks_for(
    windows: Sequence[Sequence[TraceRow]],
    loads: Sequence[float],
    policies: Sequence[str],
    seed: int,
) -> list[Task]:
    """Every (window, load, estimate, policy), longest windows first."""
    tasks = []
    for w, window in enumerate(windows):
        if not window:
            continue
        for est_i, estimate in enumerate(ESTIMATES):
            rows = tuple(with_estimates(window, estimate, seed * 1_000 + w * 10 + est_i))
            for load in loads:
                nodes = nodes_for(window, load)
                for policy in policies:
                    tasks.append(Task(w, load, estimate, policy, nodes, rows))
    # The busiest replays take longest: start them first so the pool ends together.
    tasks.sort(key=lambda t: -t.load)
    return tasks


def ratios(records: Sequence[dict[str, object]]) -> list[dict[str, object]]:
    """Each non-backfill record's ratios to backfill's on the same window and setting."""
    base = {
        (r["window"], r["load"], r["estimate"]): r for r in records if r["policy"] == "backfill"
    }
    out = []
    for r in records:
        if r["policy"] == "backfill":
            continue
        b = base[(r["window"], r["load"], r["estimate"])]
        out.append(
            {
                "window": r["window"],
                "load": r["load"],
                "estimate": r["estimate"],
                "policy": r["policy"],
                "jct": _ratio(r["avg_jct_s"], b["avg_jct_s"]),
                "bsld": _ratio(r["avg_bounded_slowdown"], b["avg_bounded_slowdown"]),
                "util": _ratio(r["utilization"], b["utilization"]),
                "max_wait": _ratio(r["max_wait_s"], b["max_wait_s"]),
                # No policy's average JCT goes below the mean run time.
                "jct_bound": _ratio(b["lower_bound_avg_jct_s"], b["avg_jct_s"]),
                # Nor its bounded slowdown below 1.
                "bsld_bound": _ratio(1.0, b["avg_bounded_slowdown"]),
            }
        )
    return out


def _ratio(a: object, b: object) -> float:
    x, y = float(a), float(b)  # type: ignore[arg-type]
    if y <= 0:
        return 1.0 if x <= 0 else math.inf
    return x / y


def table(rows: Sequence[dict[str, object]], title: str) -> list[str]:
    """Markdown: per policy and setting, median and worst of each ratio over windows."""
    lines = [
        f"\n{title}\n",
        "| policy | estimates | load | windows | JCT median / worst | bounded slowdown "
        "median / worst | utilisation median / worst | max wait median / worst | aims met | "
        "JCT bound median / max | slowdown bound median / max |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    keys = sorted({(str(r["policy"]), str(r["estimate"]), float(r["load"])) for r in rows},  # type: ignore[arg-type]
                  key=lambda k: (k[0], ESTIMATES.index(k[1]), k[2]))  # fmt: skip
    for policy, estimate, load in keys:
        of = [
            r for r in rows if (r["policy"], r["estimate"], r["load"]) == (policy, estimate, load)
        ]
        cells = []
        met = 0
        for name, worst, _aim in RATIOS:
            values = [float(r[name]) for r in of]  # type: ignore[arg-type]
            cells.append(f"{statistics.median(values):.2f} / {worst(values):.2f}")
        for r in of:
            met += all(_meets(name, float(r[name]), aim) for name, _w, aim in RATIOS)  # type: ignore[arg-type]
        lines.append(
            f"| {policy} | {estimate} | {load:.2f} | {len(of)} | " + " | ".join(cells)
            + f" | {met}/{len(of)} | {_spread([float(r['jct_bound']) for r in of], max)} | "  # type: ignore[arg-type]
            + f"{_spread([float(r['bsld_bound']) for r in of], max)} |"  # type: ignore[arg-type]
        )  # fmt: skip
    return lines


def _spread(values: Sequence[float], worst: object) -> str:
    return f"{statistics.median(values):.2f} / {worst(values):.2f}"  # type: ignore[operator]


def _meets(name: str, value: float, aim: float) -> bool:
    # Utilisation is equal up to rounding when the same jobs run to the same last end.
    return value >= aim - 1e-3 if name == "util" else value <= aim


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trace", default=str(TRACE))
    parser.add_argument("--windows", type=int, default=10)
    parser.add_argument("--tune", type=int, default=4, help="tuning windows (the rest held back)")
    parser.add_argument("--jobs", type=int, default=600, help="jobs per window")
    parser.add_argument("--loads", default="0.7,0.85,0.95")
    parser.add_argument("--policies", default="backfill,fabriek,sjf-aged")
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--only", choices=("tune", "held-back", "all"), default="all")
    parser.add_argument("--quick", action="store_true", help="3 windows of 100 jobs, one load")
    parser.add_argument("--json", help="also write every record and ratio to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.windows, args.tune, args.jobs, args.loads = 3, 1, 100, "0.9"
    rows = load_trace(args.trace)
    windows = windows_of(rows, args.windows, args.jobs)
    tune = sorted(random.Random(args.seed).sample(range(args.windows), args.tune))
    chosen = {
        "tune": tune,
        "held-back": [w for w in range(args.windows) if w not in tune],
        "all": list(range(args.windows)),
    }[args.only]
    loads = [float(x) for x in args.loads.split(",")]
    policies = args.policies.split(",")
    if "backfill" not in policies:
        policies.insert(0, "backfill")
    picked = [windows[w] if w in chosen else [] for w in range(args.windows)]
    tasks = tasks_for(picked, loads, policies, args.seed)
    t0 = time.perf_counter()
    if args.processes > 1:
        with Pool(min(args.processes, 2)) as pool:
            records = pool.map(replay, tasks, chunksize=1)
    else:
        records = [replay(t) for t in tasks]
    wall = time.perf_counter() - t0
    records.sort(key=lambda r: (r["window"], r["estimate"], r["load"], r["policy"]))  # type: ignore[return-value, arg-type]
    found = ratios(records)
    command = " ".join(["bench/scheduler_robustness.py", *(argv or sys.argv[1:])])
    print(f"Command: `.venv/bin/python {command}`")
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}; "
        f"{len(tasks)} replays in {wall:,.0f} s on {min(args.processes, 2)} processes"
    )
    print(f"Windows of {args.jobs:,} jobs: tuning {tune}, held back the others.")
    print(
        "\n| window | first job | jobs | GPUs at loads " + ", ".join(args.loads.split(",")) + " |"
    )
    print("|---:|---:|---:|---|")
    for w in chosen:
        gpus = ", ".join(str(nodes_for(windows[w], x) * GPUS_PER_NODE) for x in loads)
        print(f"| {w} | {windows[w][0].job_id} | {len(windows[w]):,} | {gpus} |")
    held = [r for r in found if r["window"] not in tune]
    tuned = [r for r in found if r["window"] in tune]
    out: list[str] = []
    if held:
        out += table(held, "Held-back windows: ratio to EASY backfill (median / worst).")
    if tuned:
        out += table(tuned, "Tuning windows: ratio to EASY backfill (median / worst).")
    print("\n".join(out))
    bad = [r for r in records if not r["all_started"] or float(r["utilization"]) > 1 + 1e-9]  # type: ignore[arg-type]
    print(f"\nInvariants: {len(records) - len(bad)}/{len(records)} replays start every job once.")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"tune": tune, "records": records, "ratios": found}, indent=1)
        )
    if bad:
        sys.exit(f"{len(bad)} replays broke an invariant")


if __name__ == "__main__":
    main()
