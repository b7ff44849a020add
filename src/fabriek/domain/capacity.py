"""Whether a job can ever run at a site, and a first-fit choice among sites with room now.

Pure: sites come in as values. The scheduler (`fabriek.scheduler`) makes the real choice;
this module answers the questions a submission must answer before anything is queued.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fabriek.domain.jobs import JobSpec
from fabriek.domain.sites import NodeGroup


@dataclass(frozen=True)
class SiteShape:
    """What a site has: its node groups and the longest time limit it allows."""

    name: str
    groups: tuple[NodeGroup, ...]
    max_time_s: int


@dataclass(frozen=True)
class Fit:
    """Where a job goes: the site, the GPU type it gets there, and on how many nodes."""

    site: str
    gpu_type: str | None
    nodes: int


def group_fits(spec: JobSpec, group: NodeGroup) -> bool:
    """Whether one node group could ever hold the job: one node if the job fits on one,
    else whole nodes (a gang of GPUs never spans node groups)."""
    if spec.gpus == 0:
        return group.cpus_per_node >= spec.cpus and group.memory_gb_per_node >= spec.memory_gb
    if not group.gpu_type or group.gpus_per_node == 0:
        return False
    if spec.gpu_type and spec.gpu_type != group.gpu_type:
        return False
    return nodes_needed(spec, group) <= group.count


def nodes_needed(spec: JobSpec, group: NodeGroup) -> int:
    """Nodes of this group the job takes: its `nodes` at least, and as many whole nodes as
    its GPUs need (the job's GPUs spread evenly over them)."""
    if spec.gpus == 0 or group.gpus_per_node == 0:
        return spec.nodes
    return max(spec.nodes, -(-spec.gpus // group.gpus_per_node))


def fitting_sites(spec: JobSpec, sites: Sequence[SiteShape]) -> list[SiteShape]:
    """The sites whose hardware can ever hold the job (time limit not considered)."""
    return [s for s in sites if any(group_fits(spec, g) for g in s.groups)]


def why_never_fits(spec: JobSpec, sites: Sequence[SiteShape]) -> tuple[str, str] | None:
    """(field, reason) when no site can ever run the job, else None."""
    fit = fitting_sites(spec, sites)
    if not fit:
        kind = f"{spec.gpu_type} " if spec.gpu_type else ""
        most = max(
            (g.count * g.gpus_per_node for s in sites for g in s.groups
             if g.gpu_type and (not spec.gpu_type or g.gpu_type == spec.gpu_type)),
            default=0,
        )  # fmt: skip
        if spec.gpus and most == 0:
            return "gpu_type", f"no site has {kind}GPUs"
        return "gpus", (
            f"no site can ever run {spec.gpus} {kind}GPU(s) on {spec.nodes} node(s): "
            f"the largest group of such nodes has {most} GPUs"
        )
    longest = max(s.max_time_s for s in fit)
    if spec.time_limit_s > longest:
        return "time_limit", (
            f"{spec.time_limit_s} s is over the longest time limit of any site that fits "
            f"({longest} s); split the work or checkpoint and resubmit"
        )
    return None


def first_fit(
    spec: JobSpec,
    sites: Sequence[SiteShape],
    busy: Mapping[str, Mapping[str | None, int]],
    unavailable: frozenset[str] = frozenset(),
    queue_depth: Mapping[str, int] | None = None,
) -> Fit | None:
    """The first site (in the order given) that fits the job and has its GPUs free now,
    with the GPU type it gets there.

    `busy` is GPUs in use per site and type. Free GPUs are counted per type across the site;
    the engine places them on nodes. `queue_depth` lets a site with a scheduler of its own
    (Slurm) take that many GPUs' worth of jobs more than it has, to queue them itself.
    """
    depth = queue_depth or {}
    for site in sites:
        if site.name in unavailable or spec.time_limit_s > site.max_time_s:
            continue
        capacity: dict[str | None, int] = {}
        for g in site.groups:
            capacity[g.gpu_type] = capacity.get(g.gpu_type, 0) + g.count * g.gpus_per_node
        for g in site.groups:
            if not group_fits(spec, g):
                continue
            used = busy.get(site.name, {}).get(g.gpu_type, 0)
            if spec.gpus == 0 or capacity[g.gpu_type] + depth.get(site.name, 0) - used >= spec.gpus:
                return Fit(site.name, g.gpu_type if spec.gpus else None, nodes_needed(spec, g))
    return None
