"""Preemption: jobs of preemptible allocations (or marked preemptible) yield to a job of
a higher tier, when stopping them is the only way to start it now.

Victims are chosen to lose as little as possible: the fewest GPUs stopped, lowest tier
first, then the most recently started (least work lost).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fabriek.scheduler.placement import Capacity, Pool, Sites
from fabriek.scheduler.snapshot import Allocation, RunningJob


def preemptible_tier(job: RunningJob, allocations: Mapping[str, Allocation]) -> int | None:
    """The tier of a running job that may be preempted, or None if it may not be."""
    alloc = allocations.get(job.project)
    if job.preemptible or (alloc is not None and alloc.preemptible):
        return alloc.tier if alloc is not None else 0
    return None


def choose_victims(
    gpus: int,
    gpu_type: str | None,
    tier: int,
    capacity: Capacity,
    candidates: Sequence[tuple[int, RunningJob]],
    sites: Sites = None,
) -> list[RunningJob] | None:
    """The running jobs to stop so that a job of `tier` needing `gpus` fits, or None.

    `candidates` are (tier, job) of the preemptible running jobs not yet stopped."""
    lower = [(t, j) for t, j in candidates if t < tier]
    if not lower:
        return None
    # Node -> victims on it, preferred first.
    on_node: dict[tuple[int, int], list[RunningJob]] = {}
    for _, job in sorted(lower, key=lambda tj: (tj[0], -tj[1].start_time_s, tj[1].job_id)):
        for share in job.nodes:
            found = capacity.where.get((job.site, share.node))
            if found is not None:
                on_node.setdefault((found[0].index, found[1]), []).append(job)
    pools, largest = capacity.matching(gpu_type, sites)
    best: tuple[int, int] | None = None
    chosen: list[RunningJob] | None = None
    for pool in pools:
        if gpus <= largest:
            options = _single_node(pool, gpus, on_node) if pool.size >= gpus else []
        else:
            options = _whole_nodes(pool, gpus, on_node)
        for victims in options:
            cost = (sum(v.gpus for v in victims), len(victims))
            if best is None or cost < best:
                best, chosen = cost, victims
    return chosen


def _gpus_on(job: RunningJob, pool: Pool, idx: int) -> int:
    name = pool.names[idx]
    return sum(s.gpus for s in job.nodes if s.node == name)


def _single_node(
    pool: Pool, gpus: int, on_node: Mapping[tuple[int, int], list[RunningJob]]
) -> list[list[RunningJob]]:
    options: list[list[RunningJob]] = []
    for idx, free in enumerate(pool.free):
        have, victims = free, []
        for job in on_node.get((pool.index, idx), []):
            if have >= gpus:
                break
            victims.append(job)
            have += _gpus_on(job, pool, idx)
        if have >= gpus and victims:
            options.append(victims)
    return options


def _whole_nodes(
    pool: Pool, gpus: int, on_node: Mapping[tuple[int, int], list[RunningJob]]
) -> list[list[RunningJob]]:
    need = -(-gpus // pool.size)
    clearable: list[tuple[int, int, list[RunningJob]]] = []
    for idx, free in enumerate(pool.free):
        victims = on_node.get((pool.index, idx), [])
        if free + sum(_gpus_on(v, pool, idx) for v in victims) >= pool.size:
            clearable.append((sum(v.gpus for v in victims), idx, victims))
    if len(clearable) < need:
        return []
    clearable.sort(key=lambda c: (c[0], c[1]))
    union: dict[int, RunningJob] = {}
    for _, _, victims in clearable[:need]:
        for v in victims:
            union[v.job_id] = v
    return [list(union.values())] if union else []
