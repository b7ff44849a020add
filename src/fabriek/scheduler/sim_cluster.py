"""The simulated cluster: identical nodes split over sites, with the trace's GPU types.

Nodes go to sites in turn (node i to site i mod K). A trace without `gpu_type` runs on
one type; a trace with types gets nodes of each type in proportion to the GPU-seconds
its jobs ask of that type (largest remainder, at least one node each where possible):
a cluster sized for its workload. Jobs without a type take any.
"""

from __future__ import annotations

from collections.abc import Sequence

from fabriek.scheduler.snapshot import Node, NodeShare, SiteState
from fabriek.scheduler.trace import TraceRow

UNTYPED = "gpu"


def _split(total: int, weights: dict[str, float]) -> dict[str, int]:
    """`total` split by weight with the largest-remainder method, at least 1 each when
    there are enough."""
    names = sorted(weights)
    floor_each = 1 if total >= len(names) else 0
    rest = total - floor_each * len(names)
    weight_sum = sum(weights.values()) or 1.0
    exact = {n: rest * weights[n] / weight_sum for n in names}
    counts = {n: floor_each + int(exact[n]) for n in names}
    left = total - sum(counts.values())
    for n in sorted(names, key=lambda n: (-(exact[n] - int(exact[n])), n))[:left]:
        counts[n] += 1
    return counts


class SimCluster:
    """Free GPUs per node; snapshots of it as the scheduler's `SiteState`s."""

    def __init__(self, site_nodes: list[list[Node]], gpus_per_node: int) -> None:
        self.gpus_per_node = gpus_per_node
        self._names = [f"site-{k + 1}" for k in range(len(site_nodes))]
        self._nodes = site_nodes
        self._index = {
            (self._names[k], node.name): (k, i)
            for k, nodes in enumerate(site_nodes)
            for i, node in enumerate(nodes)
        }
        self.total_gpus = sum(n.gpus for nodes in site_nodes for n in nodes)
        self._cached: tuple[SiteState, ...] | None = None

    def sites(self) -> tuple[SiteState, ...]:
        """The sites as they are now (cached until the next change)."""
        if self._cached is None:
            self._cached = tuple(
                SiteState(name, tuple(nodes))
                for name, nodes in zip(self._names, self._nodes, strict=True)
            )
        return self._cached

    def gpus_of(self, gpu_type: str | None) -> int:
        """GPUs of a type (all for None)."""
        return sum(
            n.gpus
            for nodes in self._nodes
            for n in nodes
            if gpu_type is None or n.gpu_type == gpu_type
        )

    def gpu_type_of(self, site: str, node: str) -> str:
        """The GPU type of a node."""
        k, i = self._index[(site, node)]
        return self._nodes[k][i].gpu_type

    def _change(self, site: str, shares: Sequence[NodeShare], sign: int) -> None:
        for share in shares:
            k, i = self._index[(site, share.node)]
            node = self._nodes[k][i]
            self._nodes[k][i] = Node(
                node.name, node.gpu_type, node.gpus, node.free + sign * share.gpus
            )
        self._cached = None

    def take(self, site: str, shares: Sequence[NodeShare]) -> None:
        """A job starts on these GPUs."""
        self._change(site, shares, -1)

    def give_back(self, site: str, shares: Sequence[NodeShare]) -> None:
        """A job ended or was preempted."""
        self._change(site, shares, +1)


def build_cluster(
    rows: Sequence[TraceRow], nodes: int, gpus_per_node: int, sites: int = 1
) -> SimCluster:
    """A cluster of `nodes` nodes of `gpus_per_node` GPUs over `sites` sites, typed for
    the trace. Raises ValueError (one line) on impossible sizes."""
    if nodes < 1:
        raise ValueError(f"nodes must be at least 1, got {nodes}")
    if gpus_per_node < 1:
        raise ValueError(f"gpus per node must be at least 1, got {gpus_per_node}")
    if not 1 <= sites <= nodes:
        raise ValueError(f"sites must be between 1 and the number of nodes ({nodes}), got {sites}")
    demand: dict[str, float] = {}
    for r in rows:
        if r.gpu_type:
            demand[r.gpu_type] = demand.get(r.gpu_type, 0.0) + r.num_gpus * r.duration_s
    counts = _split(nodes, demand) if demand else {UNTYPED: nodes}
    types = [t for t in sorted(counts) for _ in range(counts[t])]
    site_nodes: list[list[Node]] = [[] for _ in range(sites)]
    for i, gpu_type in enumerate(types):
        site_nodes[i % sites].append(Node(f"n{i:05d}", gpu_type, gpus_per_node, gpus_per_node))
    return SimCluster(site_nodes, gpus_per_node)
