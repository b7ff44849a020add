"""Applying a cycle's plan to the store: launched jobs start on their site, evicted jobs are
asked to stop, and waiting jobs show why.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from typing import cast

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from fabriek.domain.job_states import ACTIVE_STATE_VALUES, JobState
from fabriek.services.jobs.states import transition
from fabriek.services.scheduling.plans import CyclePlan, Placed
from fabriek.store.tables import JobRow, SiteRow

# Well under the bound parameters a statement may carry (SQLite 32,766; PostgreSQL 65,535).
_IDS_PER_STATEMENT = 5000


def apply(
    session: Session, plan: CyclePlan, reasons: Mapping[int, str | None], now: datetime
) -> Placed:
    """Write a plan into the store (not committed): launched jobs go to STARTING on their
    site, evicted jobs still running are asked to stop, and waiting jobs get their reason
    (written only where it changed). `reasons` are the waiting jobs' reasons as loaded."""
    site_ids = {n: i for n, i in session.execute(select(SiteRow.name, SiteRow.id))}
    placed = Placed()
    # Only the launched jobs are read whole (the waiting ones change one column), now and
    # locked: one cancelled since the cycle read it stays cancelled, and is not started.
    launched = {launch.job_id for launch in plan.launches}
    rows = {
        j.id: j
        for j in session.scalars(select(JobRow).where(JobRow.id.in_(launched)).with_for_update())
    }
    for launch in plan.launches:
        job = rows.get(launch.job_id)
        if job is None or job.state != JobState.PENDING.value:
            continue
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
    # Waiting jobs often share their words ("Priority", "Resources"): one statement per
    # distinct reason, over the jobs whose reason changes, instead of one per job.
    changed: dict[str, list[int]] = defaultdict(list)
    for job_id, words in plan.waits.items():
        stored = words[:500]
        if reasons.get(job_id) != stored:
            changed[stored].append(job_id)
    jobs = cast(Table, JobRow.__table__)
    for words, ids in changed.items():
        for at in range(0, len(ids), _IDS_PER_STATEMENT):
            session.execute(
                update(jobs)
                .where(
                    jobs.c.id.in_(ids[at : at + _IDS_PER_STATEMENT]),
                    jobs.c.state == JobState.PENDING.value,
                )
                .values(reason=words)
            )
    return placed
