"""Whether a job can ever run at a site: what a submission must know before it is queued.

Pure: sites come in as values. Where and when a job runs is the scheduler's choice
(`fabriek.scheduler`); a test keeps the two in agreement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fabriek.domain.errors import InvalidInput
from fabriek.domain.jobs import JobSpec
from fabriek.domain.partners import PartnerTerms
from fabriek.domain.sites import NodeGroup


@dataclass(frozen=True)
class SiteShape:
    """What a site has: its node groups, the longest time limit it allows, and its grid
    connection (kW, which its running jobs' IT power × PUE may never exceed)."""

    name: str
    groups: tuple[NodeGroup, ...]
    max_time_s: int
    grid_limit_kw: float | None = None
    pue: float | None = None
    grid_zone: str = "NL"
    # The container runtime its sites-file table declares (None: it runs no images).
    containers: str | None = None
    # Whether it can hand jobs their datasets (a Slurm site: only with `dataset_staging`).
    stages_datasets: bool = True
    # A partner factory's site: its country and the projects that may cross to it.
    partner: PartnerTerms | None = None


def site_fits(spec: JobSpec, site: SiteShape) -> bool:
    """Whether a site could ever hold the job, as the scheduler places gangs: on one node
    if one is big enough, else on whole nodes of one GPU type and one size."""
    if spec.gpus == 0:
        return any(
            g.cpus_per_node >= spec.cpus and g.memory_gb_per_node >= spec.memory_gb
            for g in site.groups
        )
    nodes: dict[tuple[str, int], int] = {}  # (type, GPUs per node) -> nodes
    for g in site.groups:
        if g.gpu_type and g.gpus_per_node and spec.gpu_type in (None, g.gpu_type):
            key = (g.gpu_type, g.gpus_per_node)
            nodes[key] = nodes.get(key, 0) + g.count
    return any(size >= spec.gpus or n * size >= spec.gpus for (_, size), n in nodes.items())


def fitting_sites(spec: JobSpec, sites: Sequence[SiteShape]) -> list[SiteShape]:
    """The sites whose hardware can ever hold the job (time limit not considered)."""
    return [s for s in sites if site_fits(spec, s)]


def why_never_fits(spec: JobSpec, sites: Sequence[SiteShape]) -> tuple[str, str] | None:
    """(field, reason) when no site can ever run the job, else None."""
    fit = fitting_sites(spec, sites)
    if not fit:
        kind = f"{spec.gpu_type} " if spec.gpu_type else ""
        totals = [
            sum(g.count * g.gpus_per_node for g in s.groups if (g.gpu_type, g.gpus_per_node) == k)
            for s in sites
            for k in {(g.gpu_type, g.gpus_per_node) for g in s.groups if g.gpu_type}
            if spec.gpu_type in (None, k[0])
        ]
        most = max(totals, default=0)
        if spec.gpus and most == 0:
            return "gpu_type", f"no site has {kind}GPUs"
        return "gpus", (
            f"no site can ever run {spec.gpus} {kind}GPU(s): the most any site has of them "
            f"is {most} (on whole nodes of one type and size)"
        )
    longest = max(s.max_time_s for s in fit)
    if spec.time_limit_s > longest:
        return "time_limit", (
            f"{spec.time_limit_s} s is over the longest time limit of any site that fits "
            f"({longest} s); split the work or checkpoint and resubmit"
        )
    return None


def require_fit_among(spec: JobSpec, able: Sequence[SiteShape], what: str) -> None:
    """Raises `InvalidInput` when the job can never run on `able`, the only sites that
    `what` (e.g. "can run images"): the reason names them, so that the job is refused
    before it is queued."""
    if problem := why_never_fits(spec, able):
        names = ", ".join(s.name for s in able)
        words = f"only {names} {what}, and {problem[1]} there"
        raise InvalidInput.on(problem[0], words.replace("no site has", "it has no"))
