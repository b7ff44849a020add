"""Replay each development trace with fifo, backfill and fabriek: cost and quality.

Each replay runs in its own process, so that its wall time and peak memory (maximum
resident set, interpreter included) are its own. Prints two markdown tables, replay
cost and schedule quality (with the lower bounds no scheduler can beat), and the
command that reproduces them.

    .venv/bin/python bench/scheduler_replay.py --nodes 85 [--first N] [--policies ...]

Traces are read from ../shared/data/traces/*.csv (relative to the repository root).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from fabriek.scheduler import load_trace, run_simulation

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT.parent / "shared" / "data" / "traces"


def one(
    trace: Path, first: int, nodes: int, gpn: int, sites: int, policy: str, over: float
) -> None:
    """Run one replay and print its metrics, wall time and peak memory as JSON."""
    t0 = time.perf_counter()
    rows = load_trace(trace)
    if first:
        rows = rows[:first]
    t1 = time.perf_counter()
    result = run_simulation(rows, nodes, gpn, sites, policy, over)
    t2 = time.perf_counter()
    record = result.to_dict()
    record.pop("skipped_jobs")
    record["load_s"] = t1 - t0
    record["replay_s"] = t2 - t1
    record["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    record["mean_duration_s"] = sum(r.duration_s for r in rows) / max(1, len(rows))
    print(json.dumps(record))


def hours(seconds: object) -> str:
    return f"{float(seconds) / 3600:,.2f}"  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=85)
    parser.add_argument("--gpus-per-node", type=int, default=8)
    parser.add_argument("--sites", type=int, default=1)
    parser.add_argument("--overestimate", type=float, default=2.0)
    parser.add_argument("--policies", default="fifo,backfill,fabriek")
    parser.add_argument("--first", type=int, default=0, help="replay only the first N jobs")
    parser.add_argument("--traces", default=str(TRACES), help="folder of trace CSV files")
    parser.add_argument("--one", nargs=2, metavar=("TRACE", "POLICY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(
            Path(args.one[0]),
            args.first,
            args.nodes,
            args.gpus_per_node,
            args.sites,
            args.one[1],
            args.overestimate,
        )
        return
    traces = sorted(Path(args.traces).glob("*.csv"))
    if not traces:
        sys.exit(f"no traces in {args.traces}")
    command = " ".join(["bench/scheduler_replay.py", *sys.argv[1:]])
    print(f"Command: `.venv/bin/python {command}`")
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}\n"
    )
    records = []
    for trace in traces:
        for policy in args.policies.split(","):
            cmd = [sys.executable, __file__, "--one", str(trace), policy]
            cmd += ["--nodes", str(args.nodes), "--gpus-per-node", str(args.gpus_per_node)]
            cmd += ["--sites", str(args.sites), "--overestimate", str(args.overestimate)]
            cmd += ["--first", str(args.first)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            record = json.loads(out)
            record["trace"] = trace.name
            records.append(record)
            print(f"<!-- {trace.name} {policy}: {record['replay_s']:.0f} s -->", flush=True)
    print("\n| trace | jobs | policy | GPUs | cycles | replay s | load s | peak RSS MiB |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for r in records:
        print(
            f"| {r['trace']} | {r['jobs']:,} | {r['policy']} | {r['gpus']} | {r['cycles']:,} | "
            f"{r['replay_s']:.1f} | {r['load_s']:.1f} | {r['peak_rss_mib']:.0f} |"
        )
    print("\nTimes in hours.\n")
    print(
        "| trace | policy | avg JCT | p95 JCT | avg bounded slowdown | utilisation | "
        "Jain fairness | avg wait | max wait | makespan |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    notes = []
    for trace in traces:
        of_trace = [r for r in records if r["trace"] == trace.name]
        for r in of_trace:
            print(
                f"| {r['trace']} | {r['policy']} | {hours(r['avg_jct_s'])} | "
                f"{hours(r['p95_jct_s'])} | {r['avg_bounded_slowdown']:.2f} | "
                f"{r['utilization']:.3f} | {r['jain_fairness']:.3f} | {hours(r['avg_wait_s'])} | "
                f"{hours(r['max_wait_s'])} | {hours(r['makespan_s'])} |"
            )
        r = of_trace[0]
        print(
            f"| {r['trace']} | *lower bound* | {hours(r['lower_bound_avg_jct_s'])} | | 1.00 | | | "
            f"0.00 | | {hours(r['lower_bound_makespan_s'])} |"
        )
        for b in of_trace:
            if b["policy"] == "backfill":
                ratio = b["avg_jct_s"] / b["lower_bound_avg_jct_s"]
                notes.append(
                    f"{trace.name}: {b['jobs']:,} jobs on {b['gpus']} GPUs; backfill's average "
                    f"JCT is {ratio:.2f}x the mean duration ({hours(b['lower_bound_avg_jct_s'])} h)."
                )
    print()
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
