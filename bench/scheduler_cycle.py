"""Time one scheduling cycle at 1,000 / 10,000 / 100,000 pending jobs on 10,000 GPUs.

The cluster: 1,250 nodes of 8 H100s over three sites, about 95 % busy with running jobs
of mixed sizes (so the free GPUs are scattered, as in production), 10 organisations
with 50 projects and 500 users, budgets on. Pending jobs follow the Philly trace's size
mix (93 % single-GPU, the rest 2..128 GPUs) with time limits log-uniform between a
minute and a week. Prints a markdown table (median of several runs) and the command.

    .venv/bin/python bench/scheduler_cycle.py [--runs 5] [--sizes 1000,10000,100000]
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import platform
import random
import statistics
import sys
import time

from fabriek.domain.units import GpuHours
from fabriek.scheduler import (
    Allocation,
    Node,
    NodeShare,
    PendingJob,
    RunningJob,
    SiteState,
    Snapshot,
    schedule,
)
from fabriek.services.access.config import load_access_config

NODES, GPUS_PER_NODE, SITES = 1250, 8, 3
SIZES = [1] * 930 + [2] * 22 + [4] * 22 + [8] * 20 + [16] * 3 + [32] * 1 + [64, 128]


def cluster(
    rng: random.Random, now: float, nodes_total: int = NODES, site_count: int = SITES
) -> tuple[list[SiteState], list[RunningJob]]:
    """Nodes over `site_count` sites, about 95 % of GPUs held by running jobs."""
    sites: list[SiteState] = []
    running: list[RunningJob] = []
    job_id = 10_000_000
    for s in range(site_count):
        name = f"site-{s + 1}"
        nodes: list[Node] = []
        for i in range(s, nodes_total, site_count):
            node = f"n{i:05d}"
            used = 0
            while used < GPUS_PER_NODE and rng.random() < 0.95:
                g = min(rng.choice([1, 1, 1, 2, 4, 8]), GPUS_PER_NODE - used)
                used += g
                job_id += 1
                project = f"p{rng.randrange(50)}"
                running.append(
                    RunningJob(
                        job_id=job_id,
                        project=project,
                        user=f"{project}-u{rng.randrange(10)}",
                        site=name,
                        nodes=(NodeShare(node, g),),
                        start_time_s=now - rng.uniform(0, 86_400),
                        expected_end_s=now + rng.uniform(60, 7 * 86_400),
                    )
                )
            nodes.append(Node(node, "h100", GPUS_PER_NODE, GPUS_PER_NODE - used))
        sites.append(SiteState(name, tuple(nodes)))
    return sites, running


def snapshot(n: int, seed: int = 1, nodes: int = NODES, sites_n: int = SITES) -> Snapshot:
    """A reproducible snapshot with `n` pending jobs on `nodes` nodes of 8 GPUs."""
    rng = random.Random(seed)
    now = 1_000_000.0
    sites, running = cluster(rng, now, nodes, sites_n)
    allocations = {
        f"p{i}": Allocation(
            project=f"p{i}",
            organisation=f"o{i % 10}",
            budget_left=GpuHours(rng.uniform(1e3, 1e6)),
            shares=rng.uniform(1, 10),
            tier=rng.choice([0, 0, 0, 1, 2]),
        )
        for i in range(50)
    }
    usage = {
        (f"p{i}", f"p{i}-u{u}"): GpuHours(rng.uniform(0, 5e4)) for i in range(50) for u in range(10)
    }
    pending = []
    for j in range(n):
        project = f"p{rng.randrange(50)}"
        pending.append(
            PendingJob(
                job_id=j,
                project=project,
                user=f"{project}-u{rng.randrange(10)}",
                gpus=rng.choice(SIZES),
                time_limit_s=math.exp(rng.uniform(math.log(60), math.log(7 * 86_400))),
                submit_time_s=now - rng.uniform(0, 3 * 86_400),
            )
        )
    # Budgets in normalised GPU-hours, with the shipped per-type factors, as in production.
    factors = load_access_config().gpu_hour_factors
    return Snapshot(now, pending, running, sites, allocations, usage, gpu_hour_factors=factors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per size; the median is shown")
    parser.add_argument("--sizes", default="1000,10000,100000", help="pending jobs per cycle")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(
        f"Command: `.venv/bin/python bench/scheduler_cycle.py --runs {args.runs} --sizes {args.sizes}`"
    )
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}\n"
    )
    print("| pending jobs | GPUs | median s | min s | max s | started | µs per pending job |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    medians: dict[int, float] = {}
    for n in sizes:
        snap = snapshot(n)
        times = []
        started = 0
        for _ in range(args.runs):
            t0 = time.perf_counter()
            result = schedule(snap)
            times.append(time.perf_counter() - t0)
            started = len(result.starts)
        med = medians[n] = statistics.median(times)
        print(
            f"| {n:,} | {NODES * GPUS_PER_NODE:,} | {med:.3f} | {min(times):.3f} | "
            f"{max(times):.3f} | {started} | {med / n * 1e6:.1f} |"
        )
    for lo, hi in itertools.pairwise(sizes):
        nlogn = (hi * math.log(hi)) / (lo * math.log(lo))
        print(
            f"\nGrowth {lo:,} -> {hi:,} pending: x{medians[hi] / medians[lo]:.1f} "
            f"(n log n: x{nlogn:.1f}; linear: x{hi / lo:.0f})."
        )


if __name__ == "__main__":
    main()
