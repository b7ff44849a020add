"""Applying a cycle's plan to the store: launched jobs start on their site, evicted jobs are
asked to stop, and waiting jobs show why.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.job_states import ACTIVE_STATE_VALUES, JobState
from fabriek.services.jobs.states import transition
from fabriek.services.scheduling.plans import CyclePlan, Placed
from fabriek.store.tables import JobRow, SiteRow


def apply(session: Session, plan: CyclePlan, rows: Mapping[int, JobRow], now: datetime) -> Placed:
    """Write a plan into the store (not committed): launched jobs go to STARTING on their
    site, evicted jobs still running are asked to stop, and waiting jobs get their reason
    (written only where it changed). `rows` are the waiting jobs the plan names."""
    site_ids = {n: i for n, i in session.execute(select(SiteRow.name, SiteRow.id))}
    placed = Placed()
    for launch in plan.launches:
        job = rows[launch.job_id]
        job.site_id = site_ids[launch.site]
        job.placement = [[share.node, share.gpus] for share in launch.nodes]
        # The nodes it asked for, or more where its GPUs were spread wider: every node
        # runs its task (a multi-node job's gang), so none asked for is dropped.
        job.nodes = max(job.nodes, len(launch.nodes))
        job.placed_gpu_type = launch.gpu_type
        job.allocation_id = launch.allocation_id
        job.charge_factor = launch.charge_factor
        transition(session, job, JobState.STARTING, f"starting on {launch.site}", now)
        placed.started += 1
    for eviction in plan.evictions:
        victim = session.get(JobRow, eviction.job_id)
        if victim is not None and victim.state in ACTIVE_STATE_VALUES:
            victim.cancel_requested = True
            victim.preempted_for = eviction.for_job_id
            victim.reason = eviction.reason
            placed.preempted += 1
    for job_id, words in plan.waits.items():
        job = rows[job_id]
        if job.reason != words:
            job.reason = words[:500]
    return placed
