"""Reading the engines' states back: one batched poll per site of every active job that has
a handle, and the changes applied to the store by the state rules. A job that ended has its
datasets removed; one that stopped because it was preempted waits again.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.job_states import ACTIVE_STATE_VALUES, ACTIVE_STATES, JobState, can_transition
from fabriek.domain.web_apps import is_idle_stop
from fabriek.engines.base import EngineUnavailable, Observation, poll_all
from fabriek.services.jobs.cancels import CancelSender, ran_unseen
from fabriek.services.jobs.dispatch_base import DispatchContext, unplace, wait
from fabriek.services.jobs.staging import DatasetStaging
from fabriek.services.jobs.states import transition
from fabriek.store.tables import JobRow, SiteRow

log = logging.getLogger("fabriek.dispatch")


class Observer:
    """Polls the sites' engines and records what changed."""

    def __init__(
        self, ctx: DispatchContext, staging: DatasetStaging, cancels: CancelSender
    ) -> None:
        self.ctx = ctx
        self.staging = staging
        self.cancels = cancels

    def observe(self) -> tuple[int, int]:
        """Poll every site that answers; how many jobs were seen, and how many changed."""
        with self.ctx.sessions() as session:
            active = session.execute(
                select(JobRow.id, JobRow.handle, SiteRow.name)
                .join(SiteRow, SiteRow.id == JobRow.site_id)
                .where(JobRow.state.in_(ACTIVE_STATE_VALUES), JobRow.handle.is_not(None))
            ).all()
        by_site: dict[str, dict[int, str]] = defaultdict(dict)
        for job_id, handle, site in active:
            if handle is not None:
                by_site[site][job_id] = handle
        seen: dict[int, Observation] = {}
        for site, handles in by_site.items():
            if not self.ctx.available(site):
                continue
            try:
                with self.ctx.metrics.engine_call(site, "poll"):
                    seen.update(poll_all(self.ctx.engine(site), handles))
                self.ctx.site_ok(site)
            except EngineUnavailable as exc:
                self.ctx.site_failed(site, str(exc))
        if not seen:
            return 0, 0
        return len(seen), self._apply(seen)

    def _apply(self, seen: dict[int, Observation]) -> int:
        now = self.ctx.clock()
        changed = 0
        with self.ctx.sessions() as session:
            rows = session.scalars(select(JobRow).where(JobRow.id.in_(list(seen)))).all()
            for job in rows:
                obs = seen[job.id]
                if obs.gpu_seconds:
                    job.gpu_seconds = float(sum(obs.gpu_seconds.values()))
                if obs.energy_readings:
                    job.energy_readings = [dict(r) for r in obs.energy_readings]
                if obs.started_at and job.started_at is None:
                    job.started_at = obs.started_at
                new = obs.state
                if new.value == job.state:
                    continue
                if new == JobState.PENDING:  # queued on the cluster: still starting for us
                    if job.cancel_requested:
                        continue  # its reason says the cancel is on its way
                    wait(
                        job,
                        f"queued on the cluster: {obs.reason}"
                        if obs.reason
                        else "queued on the cluster",
                    )
                    continue
                if ran_unseen(JobState(job.state), obs):
                    # It ran while no one watched (a restart, an outage): its history says so.
                    transition(session, job, JobState.RUNNING, "started", obs.started_at or now)
                if not can_transition(JobState(job.state), new):
                    if JobState(job.state) == JobState.STARTING and can_transition(
                        JobState.RUNNING, new
                    ):
                        transition(session, job, JobState.RUNNING, "started", obs.started_at or now)
                    else:
                        log.warning(
                            "job %s: engine says %s, store says %s; kept", job.id, new, job.state
                        )
                        continue
                if new not in ACTIVE_STATES:
                    job.exit_code = obs.exit_code
                    job.ended_at = obs.ended_at or now
                    self.cancels.ended(job.id)
                    # The run is over: its decrypted datasets go with it.
                    self.staging.unstage(job.id)
                reason = obs.reason or ("started" if new == JobState.RUNNING else None)
                if new == JobState.CANCELLED and job.preempted_for is not None:
                    _requeue(session, job, now)
                    changed += 1
                    continue
                if new == JobState.CANCELLED and job.cancel_requested and is_idle_stop(job.reason):
                    reason = job.reason  # an idle notebook keeps the reason it was stopped for
                elif new == JobState.CANCELLED and job.cancel_requested and not obs.reason:
                    reason = "cancelled on request"
                transition(session, job, new, reason, now)
                changed += 1
            self.ctx.fence(session)
            session.commit()
        return changed


def _requeue(session: Session, job: JobRow, now: datetime) -> None:
    """A preempted job stopped: it waits again, keeping its place by submission time."""
    if JobState(job.state) == JobState.STARTING:
        transition(session, job, JobState.RUNNING, "started", now)
    transition(session, job, JobState.PREEMPTED, f"preempted for job {job.preempted_for}", now)
    unplace(job)
    job.handle = None
    job.started_at = None
    job.energy_readings = None
    job.exit_code = None
    job.cancel_requested = False
    job.preempted_for = None
    transition(session, job, JobState.PENDING, "requeued after preemption", now)
