"""Gang placement on a cycle's working copy of the free GPUs.

All GPUs of a job are placed at once, at one site, on nodes of one type. A job that fits
on one node goes on one node, the one it fills best (least left over), which keeps whole
nodes free for big jobs; a bigger job takes whole free nodes. Nodes of one site, type and
size form a pool; each pool indexes its nodes by free GPUs, so a placement costs a few
dictionary look-ups however many nodes there are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from fabriek.domain.gpus import gpu_type as lookup_gpu_type
from fabriek.scheduler.signals import Signals
from fabriek.scheduler.snapshot import NodeShare, RunningJob, SiteState

# The sites an allocation may be spent on; None: any site.
Sites = frozenset[str] | None

# Board power assumed for a GPU type the reference data does not know: an H100-class
# figure, so an unknown type is never under-counted against a power budget.
DEFAULT_GPU_WATTS = 700.0


def gpu_watts(code: str) -> float:
    """Board power of one GPU of type `code`, from the reference data."""
    known = lookup_gpu_type(code)
    return float(known.tdp_w) if known else DEFAULT_GPU_WATTS


class Pool:
    """Identical nodes of one site: free GPUs per node, indexed by how many are free.

    After a reservation is set, `cap` limits what jobs that outlast it may take on the
    reserved nodes; `eff_buckets` index nodes by what such jobs may take.
    """

    __slots__ = (
        "buckets",
        "cap",
        "eff_buckets",
        "free",
        "gpu_type",
        "index",
        "names",
        "site",
        "size",
        "watts",
    )

    def __init__(self, index: int, site: str, gpu_type: str, size: int) -> None:
        self.index = index
        self.site = site
        self.gpu_type = gpu_type
        self.size = size
        self.watts = gpu_watts(gpu_type)
        self.names: list[str] = []
        self.free: list[int] = []
        # buckets[f]: the nodes with exactly f GPUs free, as an insertion-ordered set.
        self.buckets: list[dict[int, None]] = [{} for _ in range(size + 1)]
        self.cap: dict[int, int] | None = None
        self.eff_buckets: list[dict[int, None]] | None = None

    def index_nodes(self) -> None:
        """Index the nodes added to `names` and `free` by free GPUs (clamped to the node)."""
        size, free, buckets = self.size, self.free, self.buckets
        if min(free, default=0) < 0 or max(free, default=0) > size:
            self.free = free = [max(0, min(f, size)) for f in free]
        for idx, f in enumerate(free):
            buckets[f][idx] = None

    def eff(self, idx: int) -> int:
        """GPUs a job that outlasts the reservation may take on node `idx`."""
        free = self.free[idx]
        if self.cap is None:
            return free
        return max(0, min(free, self.cap.get(idx, free)))

    def set_caps(self, caps: dict[int, int]) -> None:
        """Limit jobs that outlast the reservation to `caps[node]` GPUs on those nodes."""
        self.cap = caps
        self.eff_buckets = [dict(b) for b in self.buckets]
        for idx in caps:
            del self.eff_buckets[self.free[idx]][idx]
            self.eff_buckets[self.eff(idx)][idx] = None

    def change(self, idx: int, delta: int, outlasts: bool) -> None:
        """Free (`delta` > 0) or take (< 0) GPUs on node `idx`."""
        old_eff = self.eff(idx)
        del self.buckets[self.free[idx]][idx]
        self.free[idx] += delta
        self.buckets[self.free[idx]][idx] = None
        if self.cap is not None and self.eff_buckets is not None:
            if outlasts and idx in self.cap:
                self.cap[idx] += delta
            del self.eff_buckets[old_eff][idx]
            self.eff_buckets[self.eff(idx)][idx] = None

    def view(self, outlasts: bool) -> list[dict[int, None]]:
        """The bucket index a job sees: the capped one if it outlasts the reservation."""
        if outlasts and self.eff_buckets is not None:
            return self.eff_buckets
        return self.buckets


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a job goes: a pool and GPUs per node index."""

    pool: Pool
    shares: tuple[tuple[int, int], ...]

    @property
    def gpus(self) -> int:
        """GPUs placed."""
        return sum(n for _, n in self.shares)

    def node_shares(self) -> tuple[NodeShare, ...]:
        """The placement in node names, as decisions carry it."""
        return tuple(NodeShare(self.pool.names[i], n) for i, n in self.shares)


class Capacity:
    """The free GPUs of every site, copied from the snapshot and changed as the cycle
    starts and preempts jobs. Power budgets, if any, cap each site: `window` sets them
    for the hours a job's time limit covers."""

    def __init__(
        self,
        sites: Sequence[SiteState],
        running: Sequence[RunningJob],
        signals: Signals,
        now: float,
    ) -> None:
        self.pools: list[Pool] = []
        self.cost: dict[str, float] = {}
        self.power_left: dict[str, float] = {}
        # Watts drawn by running jobs and this cycle's starts, per site (with budgets).
        self.power_used: dict[str, float] = {}
        self.signals = signals
        self.now = now
        self.capped = False
        self._window_key = -(2**62)  # no window set yet
        self._budgets: dict[tuple[str, int], float] = {}
        self._where: dict[tuple[str, str], tuple[Pool, int]] | None = None
        for site in sites:
            signal = signals.at(site.name, now)
            self.cost[site.name] = signal.cost() if signal else 0.0
            budget = signal.power_budget_kw if signal else None
            self.power_left[site.name] = math.inf if budget is None else budget * 1000.0
            nodes = site.nodes
            if not nodes:
                continue
            first = nodes[0]
            if all(n.gpus == first.gpus and n.gpu_type == first.gpu_type for n in nodes):
                # The usual site: one kind of node. Built with comprehensions, as this
                # runs every cycle over every node.
                only = Pool(len(self.pools), site.name, first.gpu_type, first.gpus)
                only.names = [n.name for n in nodes]
                only.free = [n.free for n in nodes]
                self.pools.append(only)
                continue
            by_key: dict[tuple[str, int], Pool] = {}
            for node in nodes:
                pool = by_key.get((node.gpu_type, node.gpus))
                if pool is None:
                    pool = Pool(len(self.pools), site.name, node.gpu_type, node.gpus)
                    by_key[(node.gpu_type, node.gpus)] = pool
                    self.pools.append(pool)
                pool.names.append(node.name)
                pool.free.append(node.free)
        for pool in self.pools:
            pool.index_nodes()
        if signals.power is not None:
            for pool in self.pools:
                pool.watts = signals.power.grid_watts(pool.gpu_type)
        if (signals.by_site or signals.outside) and signals.has_budget():
            # A budget somewhere: a start must fit every hour its time limit covers.
            self.capped = True
            self.power_used = dict.fromkeys(self.power_left, 0.0)
            for job in running:
                for share in job.nodes:
                    found = self.where.get((job.site, share.node))
                    if found is not None and job.site in self.power_used:
                        self.power_used[job.site] += share.gpus * found[0].watts
            for name in self.power_left:
                self.power_left[name] -= self.power_used[name]
        self.total_free = sum(sum(p.free) for p in self.pools)
        self._matching: dict[tuple[str | None, Sites], tuple[list[Pool], int]] = {}
        # Smallest GPU count that failed, per (type, sites, outlasts, single-node, window):
        # capacity only shrinks during a cycle, so any bigger request of the same kind
        # fails too.
        self._failed: dict[tuple[str | None, Sites, bool, bool, int], tuple[int, bool]] = {}
        self.power_blocked = False

    def window(self, end_s: float) -> None:
        """Budgets for a job that may run until `end_s`: per site the least budget of the
        hours from now to then, less the power of everything running. Only with budgets."""
        last = self.signals.hour_of(max(self.now, end_s - 1e-6))
        if last == self._window_key:
            return
        self._window_key = last
        for name, used in self.power_used.items():
            budget = self._budgets.get((name, last))
            if budget is None:
                budget = self.signals.budget_kw(name, self.now, end_s) * 1000.0
                self._budgets[(name, last)] = budget
            self.power_left[name] = budget - used

    @property
    def where(self) -> dict[tuple[str, str], tuple[Pool, int]]:
        """(site, node name) -> (pool, node index); built on first use."""
        if self._where is None:
            self._where = {
                (p.site, name): (p, idx) for p in self.pools for idx, name in enumerate(p.names)
            }
        return self._where

    def usable_free(self) -> int:
        """Free GPUs that the power budgets of this hour also leave room for (every free
        GPU where a site has no budget), each counted at its site's dearest GPU's power."""
        if not self.capped:
            return self.total_free
        usable = 0
        for site, left in self.power_left.items():
            pools = [p for p in self.pools if p.site == site]
            free = sum(sum(p.free) for p in pools)
            watts = max((p.watts for p in pools), default=0.0)
            room = free if left == math.inf or watts <= 0 else max(0, int(left // watts))
            usable += min(free, room)
        return usable

    def never_fits(self, gpus: int, gpu_type: str | None, sites: Sites = None) -> bool:
        """`reasons.never_fits` on this cycle's nodes, from the pools' sizes."""
        pools, largest = self.matching(gpu_type, sites)
        if gpus <= 0 or gpus <= largest:
            return False
        return not any(len(p.names) * p.size >= gpus for p in pools if p.size > 0)

    def matching(self, gpu_type: str | None, sites: Sites = None) -> tuple[list[Pool], int]:
        """Pools of this type (all for None) at these sites (all for None) and their
        largest node size."""
        found = self._matching.get((gpu_type, sites))
        if found is None:
            pools = [
                p
                for p in self.pools
                if (gpu_type is None or p.gpu_type == gpu_type)
                and (sites is None or p.site in sites)
            ]
            found = (pools, max((p.size for p in pools), default=0))
            self._matching[(gpu_type, sites)] = found
        return found

    def find(
        self, gpus: int, gpu_type: str | None, outlasts: bool, sites: Sites = None
    ) -> Placement | None:
        """The best placement for `gpus` GPUs now (at one of `sites`, when given), or
        None; `power_blocked` tells whether a power budget alone stood in the way. A job
        that `outlasts` the reservation sees the reserved nodes capped."""
        pools, largest = self.matching(gpu_type, sites)
        single = gpus <= largest
        key = (gpu_type, sites, outlasts, single, self._window_key)
        failed = self._failed.get(key)
        if failed is not None and gpus >= failed[0]:
            self.power_blocked = failed[1]
            return None
        self.power_blocked = False
        found = (
            self._single(pools, gpus, outlasts) if single else self._whole(pools, gpus, outlasts)
        )
        if found is None:
            self._failed[key] = (gpus, self.power_blocked)
        return found

    def _single(self, pools: list[Pool], gpus: int, outlasts: bool) -> Placement | None:
        best: tuple[int, int, float, int] | None = None
        choice: tuple[Pool, int] | None = None
        for pool in pools:
            if pool.size < gpus:
                continue
            if gpus * pool.watts > self.power_left[pool.site]:
                self.power_blocked = True
                continue
            if not outlasts and pool.cap:
                # A job that ends before the reservation goes on a reserved node first:
                # those GPUs would otherwise idle, as longer jobs may not use them.
                for idx in pool.cap:
                    f = pool.free[idx]
                    if f >= gpus:
                        rank = (0, f - gpus, self.cost[pool.site], pool.index)
                        if best is None or rank < best:
                            best, choice = rank, (pool, idx)
            buckets = pool.view(outlasts)
            for f in range(gpus, pool.size + 1):
                bucket = buckets[f]
                if bucket:
                    rank = (1, f - gpus, self.cost[pool.site], pool.index)
                    if best is None or rank < best:
                        best, choice = rank, (pool, next(iter(bucket)))
                    break
        if choice is None:
            return None
        self.power_blocked = False
        return Placement(choice[0], ((choice[1], gpus),))

    def _whole(self, pools: list[Pool], gpus: int, outlasts: bool) -> Placement | None:
        best: tuple[int, float, int] | None = None
        chosen: Pool | None = None
        for pool in pools:
            need = -(-gpus // pool.size)
            if len(pool.view(outlasts)[pool.size]) < need:
                continue
            if gpus * pool.watts > self.power_left[pool.site]:
                self.power_blocked = True
                continue
            rank = (need * pool.size - gpus, self.cost[pool.site], pool.index)
            if best is None or rank < best:
                best, chosen = rank, pool
        if chosen is None:
            return None
        self.power_blocked = False
        shares: list[tuple[int, int]] = []
        left = gpus
        for idx in chosen.view(outlasts)[chosen.size]:
            take = min(left, chosen.size)
            shares.append((idx, take))
            left -= take
            if left == 0:
                break
        return Placement(chosen, tuple(shares))

    def commit(self, placement: Placement, outlasts: bool) -> None:
        """Take the placement's GPUs."""
        pool = placement.pool
        for idx, n in placement.shares:
            pool.change(idx, -n, outlasts)
        self.total_free -= placement.gpus
        if self.capped:
            watts = placement.gpus * pool.watts
            self.power_left[pool.site] -= watts
            self.power_used[pool.site] += watts

    def release(self, site: str, shares: Sequence[NodeShare]) -> None:
        """Give back a preempted job's GPUs."""
        for share in shares:
            found = self.where.get((site, share.node))
            if found is None:
                continue
            pool, idx = found
            # Clamped: a snapshot may count a node's GPUs both free and held.
            n = min(share.gpus, pool.size - pool.free[idx])
            pool.change(idx, n, True)
            self.total_free += n
            if self.capped:
                self.power_left[site] += n * pool.watts
                self.power_used[site] -= n * pool.watts
        self._failed.clear()

    def retake(self, site: str, shares: Sequence[NodeShare]) -> None:
        """Undo `release`: the job keeps its GPUs after all."""
        for share in shares:
            found = self.where.get((site, share.node))
            if found is None:
                continue
            pool, idx = found
            n = min(share.gpus, pool.free[idx])
            pool.change(idx, -n, True)
            self.total_free -= n
            if self.capped:
                self.power_left[site] -= n * pool.watts
                self.power_used[site] += n * pool.watts
        self._failed.clear()
