"""Time scheduling cycles at gigafactory scale: up to 1,000,000 pending jobs on up to
100,000 GPUs (12,500 nodes of 8 over four sites), the queue kept as an index between cycles
(issue 21, point 4).

The factory is `scheduler_cycle.py`'s (about 95 % of GPUs busy, the Philly size mix, budgets
on), with more nodes and four sites. Each size runs in a process of its own (so its peak RSS
is its own): it builds the snapshot and the queue's index (`PendingQueue`), runs a first
cycle (about 5 % of the GPUs free: thousands of starts), then `--cycles` steady cycles 30 s
apart, each after the changes a live factory sees (the started jobs leave the queue and run,
jobs past their time limit end, `--arrivals` new jobs arrive). A cycle's time includes
bringing the index up to date. Shown: wall-clock and CPU seconds (the CPU time is less
disturbed by other work on a shared machine), the old path (the queue as a plain list, no
index) where `--old-up-to` allows, and the peak RSS of the process, which also holds the
generated workload.

    .venv/bin/python bench/scheduler_scale.py [--pending 10000,100000,300000,1000000]
        [--gpus 10000,25000,50000,100000] [--cycles 5] [--arrivals 200] [--old-up-to 100000]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gc
import json
import math
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scheduler_cycle as base
from fabriek.scheduler import (
    CycleResult,
    Decision,
    NodeShare,
    PendingJob,
    RunningJob,
    SiteState,
    Snapshot,
    Start,
    schedule,
)
from fabriek.scheduler.queue_index import PendingQueue

GPUS_PER_NODE = base.GPUS_PER_NODE
SITES = 4
STEP_S = 30.0
T = TypeVar("T")


def _timed(work: Callable[[], T]) -> tuple[float, float, T]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def one(pending: int, gpus: int, cycles: int, arrivals: int, old: bool) -> dict[str, object]:
    """Measure one size; the numbers as a dict."""
    nodes = gpus // GPUS_PER_NODE
    snap = base.snapshot(pending, nodes=nodes, sites_n=SITES)
    out: dict[str, object] = {"pending": pending, "gpus": gpus, "running": len(snap.running)}
    if old:
        # The old path: the queue as a list, ordered and checked job by job.
        wall, cpu, _ = _timed(lambda: schedule(snap))
        out["old_wall_s"], out["old_cpu_s"] = wall, cpu
    wall, cpu, queue = _timed(lambda: PendingQueue(snap.pending))
    out["index_build_s"] = wall
    snap = dataclasses.replace(snap, pending=queue)
    # A service holding a big index keeps it out of the collector's scans.
    gc.collect()
    gc.freeze()
    wall, cpu, result = _timed(lambda: schedule(snap))
    out["first_wall_s"], out["first_cpu_s"] = wall, cpu
    out["first_starts"] = len(result.starts)
    rng = random.Random(7)
    next_id = 2 * 10**7
    walls, cpus, starts = [], [], []
    for _ in range(cycles):
        now = snap.now_s + STEP_S
        running, free = _carry_out(snap, result.decisions, now)
        started = [d.job_id for d in result.decisions if isinstance(d, Start)]
        new = []
        for _ in range(arrivals):
            project = f"p{rng.randrange(50)}"
            new.append(
                PendingJob(next_id, project, f"{project}-u{rng.randrange(10)}",
                           rng.choice(base.SIZES),
                           math.exp(rng.uniform(math.log(60), math.log(7 * 86_400))),
                           now - rng.uniform(0, STEP_S))
            )  # fmt: skip
            next_id += 1
        sites = [
            SiteState(s.name, tuple(dataclasses.replace(n, free=free[(s.name, n.name)])
                                    for n in s.nodes))
            for s in snap.sites
        ]  # fmt: skip

        snap = dataclasses.replace(snap, now_s=now, running=running, sites=sites)
        wall, cpu, result = _timed(functools.partial(_cycle, queue, snap, started, new))
        walls.append(wall)
        cpus.append(cpu)
        starts.append(len(result.starts))
    out["steady_wall_s"] = statistics.median(walls) if walls else None
    out["steady_cpu_s"] = statistics.median(cpus) if cpus else None
    out["steady_starts"] = statistics.median(starts) if starts else None
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _cycle(
    queue: PendingQueue, snap: Snapshot, started: list[int], new: list[PendingJob]
) -> CycleResult:
    """Bring the index up to date, then run the cycle."""
    queue.remove(started)
    queue.add(new)
    return schedule(snap)


def _carry_out(
    snap: Snapshot, decisions: list[Decision], now: float
) -> tuple[list[RunningJob], dict[tuple[str, str], int]]:
    """The running jobs and free GPUs per node after a cycle's starts, with the jobs
    whose time limit has passed by `now` ended."""
    free = {(s.name, n.name): n.free for s in snap.sites for n in s.nodes}
    running = []
    for job in snap.running:
        if job.expected_end_s <= now:
            for share in job.nodes:
                free[(job.site, share.node)] += share.gpus
        else:
            running.append(job)
    for d in decisions:
        if isinstance(d, Start) and d.nodes:
            for share in d.nodes:
                free[(d.site, share.node)] -= share.gpus
            running.append(
                RunningJob(d.job_id, "p0", "p0-u0", d.site, tuple(NodeShare(s.node, s.gpus)
                           for s in d.nodes), now, now + 3600.0)
            )  # fmt: skip
    return running, free


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pending", default="10000,100000,300000,1000000")
    parser.add_argument("--gpus", default="10000,25000,50000,100000")
    parser.add_argument("--cycles", type=int, default=5, help="steady cycles; the median")
    parser.add_argument("--arrivals", type=int, default=200, help="new jobs per cycle")
    parser.add_argument("--old-up-to", type=int, default=100_000, help="old path up to")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        p, g = (int(x) for x in args.one.split(","))
        print(json.dumps(one(p, g, args.cycles, args.arrivals, p <= args.old_up_to)))
        return
    pendings = [int(x) for x in args.pending.split(",")]
    gpus = [int(x) for x in args.gpus.split(",")]
    points = [(p, max(gpus)) for p in pendings] + [(max(pendings), g) for g in gpus[:-1]]
    print(
        f"Command: `.venv/bin/python bench/scheduler_scale.py --pending {args.pending} "
        f"--gpus {args.gpus} --cycles {args.cycles} --arrivals {args.arrivals} "
        f"--old-up-to {args.old_up_to}`"
    )
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}\n"
    )
    print(
        "| pending jobs | GPUs | running jobs | first cycle s (CPU s) | starts | "
        "steady cycle s (CPU s) | old path s (CPU s) | peak RSS MiB |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for p, g in sorted(set(points), key=lambda pg: (pg[1] != max(gpus), pg)):
        done = subprocess.run(
            [sys.executable, __file__, "--one", f"{p},{g}", "--cycles", str(args.cycles),
             "--arrivals", str(args.arrivals), "--old-up-to", str(args.old_up_to)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        r = json.loads(done.stdout)
        old = f"{r['old_wall_s']:.2f} ({r['old_cpu_s']:.2f})" if "old_wall_s" in r else "not run"
        print(
            f"| {p:,} | {g:,} | {r['running']:,} | {r['first_wall_s']:.3f} "
            f"({r['first_cpu_s']:.3f}) | {r['first_starts']:,} | {r['steady_wall_s']:.3f} "
            f"({r['steady_cpu_s']:.3f}) | {old} | {r['peak_rss_mib']:,.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
