"""Explicit factories for scheduler test data: small, readable snapshots."""

from __future__ import annotations

from collections.abc import Sequence

from fabriek.domain.units import GpuHours
from fabriek.scheduler import (
    Allocation,
    Node,
    NodeShare,
    PendingJob,
    RunningJob,
    SiteState,
    Snapshot,
)
from fabriek.scheduler.signals import Signals


def site(
    name: str = "s1",
    nodes: int = 2,
    gpus: int = 8,
    free: Sequence[int] | None = None,
    gpu_type: str = "h100",
    prefix: str = "n",
) -> SiteState:
    """A site of `nodes` identical nodes; `free` per node (all free by default)."""
    frees = list(free) if free is not None else [gpus] * nodes
    return SiteState(
        name, tuple(Node(f"{prefix}{i}", gpu_type, gpus, frees[i]) for i in range(nodes))
    )


def pending(
    job_id: int,
    gpus: int = 1,
    limit: float = 3600.0,
    submit: float = 0.0,
    project: str = "p1",
    user: str = "u1",
    **kwargs: object,
) -> PendingJob:
    """A pending job of project p1 unless told."""
    return PendingJob(
        job_id=job_id,
        project=project,
        user=user,
        gpus=gpus,
        time_limit_s=limit,
        submit_time_s=submit,
        **kwargs,  # type: ignore[arg-type]
    )


def running(
    job_id: int,
    shares: dict[str, int],
    end: float,
    site_name: str = "s1",
    start: float = 0.0,
    project: str = "p1",
    user: str = "u1",
    preemptible: bool = False,
) -> RunningJob:
    """A running job holding `shares` (node -> GPUs) until `end`."""
    return RunningJob(
        job_id=job_id,
        project=project,
        user=user,
        site=site_name,
        nodes=tuple(NodeShare(n, g) for n, g in shares.items()),
        start_time_s=start,
        expected_end_s=end,
        preemptible=preemptible,
    )


def allocation(
    project: str = "p1",
    organisation: str = "o1",
    budget: float | None = None,
    tier: int = 0,
    preemptible: bool = False,
    shares: float = 1.0,
) -> Allocation:
    """An allocation; `budget` in GPU-hours, None for no limit."""
    return Allocation(
        project=project,
        organisation=organisation,
        budget_left=GpuHours(budget) if budget is not None else None,
        shares=shares,
        tier=tier,
        preemptible=preemptible,
    )


def snapshot(
    pending_jobs: Sequence[PendingJob],
    sites: Sequence[SiteState] | None = None,
    running_jobs: Sequence[RunningJob] = (),
    allocations: Sequence[Allocation] | None = None,
    now: float = 0.0,
    usage: dict[tuple[str, str], GpuHours] | None = None,
    signals: Signals | None = None,
) -> Snapshot:
    """A snapshot; one site of two 8-GPU nodes and allocation p1 unless told."""
    allocs = allocations if allocations is not None else [allocation()]
    return Snapshot(
        now_s=now,
        pending=list(pending_jobs),
        running=list(running_jobs),
        sites=list(sites) if sites is not None else [site()],
        allocations={a.project: a for a in allocs},
        usage=usage or {},
        signals=signals or Signals(),
    )
