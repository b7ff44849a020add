"""EASY backfill: the first job that cannot start gets a reservation at its earliest
possible time; later jobs may start now only if they cannot delay it.

The earliest time comes from the running jobs' ends by their time limits (and those of
the jobs this cycle starts): GPUs are given back in order of end until the job fits.
A job that ends by the reservation's start may use any free GPU; a job that outlasts it
may use, on the reserved nodes, only what the reservation leaves over.
"""

from __future__ import annotations

from collections.abc import Sequence

from fabriek.scheduler.decisions import Reservation
from fabriek.scheduler.placement import Capacity, Pool, Sites
from fabriek.scheduler.snapshot import NodeShare

# (expected end, site, GPUs per node) of every job holding GPUs.
End = tuple[float, str, tuple[NodeShare, ...]]


def plan_reservation(
    job_id: int,
    gpus: int,
    gpu_type: str | None,
    capacity: Capacity,
    ends: Sequence[End],
    now: float,
    sites: Sites = None,
) -> Reservation | None:
    """Reserve GPUs for the job at the earliest time they will be free, and cap the
    reserved nodes for jobs that would outlast that time. None if giving back every
    running job's GPUs would still not fit it (nodes down)."""
    pools, largest = capacity.matching(gpu_type, sites)
    single = gpus <= largest
    wanted = {p.index for p in pools if (p.size >= gpus if single else p.size > 0)}
    if not wanted:
        return None
    free = {p.index: list(p.free) for p in pools if p.index in wanted}
    whole = {p.index: p.free.count(p.size) for p in pools if p.index in wanted}
    fits_at: float | None = None
    for end, site, released in sorted(ends, key=lambda e: e[0]):
        if fits_at is not None and end > fits_at:
            break
        for share in released:
            found = capacity.where.get((site, share.node))
            if found is None or found[0].index not in wanted:
                continue
            pool, idx = found
            scratch = free[pool.index]
            before = scratch[idx]
            scratch[idx] = min(pool.size, before + share.gpus)
            if scratch[idx] == pool.size > before:
                whole[pool.index] += 1
            if fits_at is None and _fits(pool, scratch, idx, gpus, single, whole):
                fits_at = max(end, now)
    if fits_at is None:
        return None
    pool, shares = _choose(pools, wanted, free, gpus, single, capacity)
    caps = {idx: free[pool.index][idx] - n for idx, n in shares}
    pool.set_caps(caps)
    return Reservation(
        job_id, fits_at, pool.site, tuple(NodeShare(pool.names[i], n) for i, n in shares)
    )


def _fits(
    pool: Pool, scratch: list[int], idx: int, gpus: int, single: bool, whole: dict[int, int]
) -> bool:
    if single:
        return scratch[idx] >= gpus
    return whole[pool.index] >= -(-gpus // pool.size)


def _choose(
    pools: list[Pool],
    wanted: set[int],
    free: dict[int, list[int]],
    gpus: int,
    single: bool,
    capacity: Capacity,
) -> tuple[Pool, list[tuple[int, int]]]:
    """The placement at the reservation's time, by the same best-fit rule as now."""
    best: tuple[int, float, int] | None = None
    result: tuple[Pool, list[tuple[int, int]]] | None = None
    for pool in pools:
        if pool.index not in wanted:
            continue
        scratch = free[pool.index]
        if single:
            fitting = [(f - gpus, idx) for idx, f in enumerate(scratch) if f >= gpus]
            if not fitting:
                continue
            left, idx = min(fitting)
            rank = (left, capacity.cost[pool.site], pool.index)
            shares = [(idx, gpus)]
        else:
            need = -(-gpus // pool.size)
            empty = [idx for idx, f in enumerate(scratch) if f == pool.size]
            if len(empty) < need:
                continue
            rank = (need * pool.size - gpus, capacity.cost[pool.site], pool.index)
            shares = []
            left_gpus = gpus
            for idx in empty[:need]:
                shares.append((idx, min(left_gpus, pool.size)))
                left_gpus -= pool.size
        if best is None or rank < best:
            best, result = rank, (pool, shares)
    assert result is not None, "called only when the job fits"
    return result
