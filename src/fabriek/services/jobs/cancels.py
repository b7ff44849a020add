"""Cancels that must reach a cluster: kept until the engine confirms, never lost to an outage.

A cancel of a started job is a flag on the job (`cancel_requested`), so it survives a
restart of the control plane; the dispatcher sends it at the start of every cycle, before it
places, launches or observes anything. Where the job's cluster does not answer, the site is
backed off for everything else, but its cancels are tried again in the background about every
second (never blocking the cycle): the first call that reaches a returning cluster is the
cancel, so a queued job is stopped before the cluster can start it. A job whose cancel was
asked before any cluster had it is never handed to one.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from fabriek.domain.job_states import ACTIVE_STATE_VALUES, JobState
from fabriek.engines.base import Engine, EngineUnavailable, Observation
from fabriek.services.jobs.dispatch_base import DispatchContext
from fabriek.services.jobs.states import transition
from fabriek.store.tables import JobRow, SiteRow

# How often a cancel is tried again at a site that does not answer, at most.
PROBE_EVERY_S = 1.0
# How long a cancel sent to a site that answers waits for the job to end before it is sent again.
CANCEL_RETRY_S = 30.0

# The ends that mean the job's own command ran (CANCELLED and LOST may come before it did).
_RAN = frozenset({JobState.COMPLETED, JobState.TIMED_OUT})


@dataclass(frozen=True)
class ProbeResult:
    """What one background round of cancels at a site came to."""

    site: str
    sent: tuple[int, ...]
    failure: str | None


def _cancel_all(site: str, engine: Engine, due: Sequence[tuple[int, str]]) -> ProbeResult:
    sent: list[int] = []
    for job_id, handle in due:
        try:
            engine.cancel(handle)
        except EngineUnavailable as exc:
            return ProbeResult(site, tuple(sent), str(exc))
        sent.append(job_id)
    return ProbeResult(site, tuple(sent), None)


class CancelProbes:
    """Cancels for sites that do not answer, tried in threads of their own, one round per
    site at a time and at most every `every_s`; `wake` is set when a round ends."""

    def __init__(self, wake: threading.Event, every_s: float = PROBE_EVERY_S) -> None:
        self.wake = wake
        self.every_s = every_s
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="cancel-probe")
        self._rounds: dict[str, tuple[float, Future[ProbeResult]]] = {}
        self._collected: set[str] = set()

    def probe(self, site: str, engine: Engine, due: Sequence[tuple[int, str]]) -> None:
        """Try `due` (job id, handle) at `site` in the background, unless a round for it is
        still under way or began less than `every_s` ago."""
        if site in self._rounds or not due:
            return
        future = self._pool.submit(_cancel_all, site, engine, list(due))
        future.add_done_callback(lambda _f: self.wake.set())
        self._rounds[site] = (time.monotonic(), future)

    def collect(self) -> list[ProbeResult]:
        """The rounds that ended; a site may be tried again once `every_s` has passed."""
        out: list[ProbeResult] = []
        for site, (began, future) in list(self._rounds.items()):
            if not future.done():
                continue
            if site not in self._collected:
                self._collected.add(site)
                try:
                    out.append(future.result())
                except Exception as exc:  # an engine bug: the cancel waits for the next round
                    out.append(ProbeResult(site, (), f"internal error: {exc}"))
            if time.monotonic() - began >= self.every_s:
                del self._rounds[site]
                self._collected.discard(site)
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


# The reason a job shows while its submission may have reached its site unanswered: it is
# kept there (STARTING, no handle) and submitted there again, never placed elsewhere.
UNCONFIRMED = "SubmissionUnconfirmed"


def end_unlaunched(session: Session, now: datetime) -> int:
    """Jobs whose cancel was asked after they were placed but before any cluster had them
    end here: none is handed to a cluster. Not committed. A job whose submission may have
    reached its cluster unanswered is not one of them: its cancel goes to the cluster once
    the submission is confirmed."""
    rows = session.scalars(
        select(JobRow).where(
            JobRow.state == JobState.STARTING.value,
            JobRow.handle.is_(None),
            JobRow.cancel_requested.is_(True),
            or_(JobRow.reason.is_(None), ~JobRow.reason.startswith(UNCONFIRMED)),
        )
    ).all()
    for job in rows:
        job.ended_at = now
        transition(session, job, JobState.CANCELLED, "cancelled on request before it started", now)
    return len(rows)


def ran_unseen(state: JobState, obs: Observation) -> bool:
    """Whether a job the dispatcher never saw running did run: it ended, and the engine
    says when it started or how it ended says its command ran."""
    if state != JobState.STARTING or obs.state in (JobState.STARTING, JobState.RUNNING):
        return False
    if obs.state == JobState.PREEMPTED:
        return False
    return (
        obs.started_at is not None
        or obs.state in _RAN
        or (obs.state == JobState.FAILED and obs.exit_code is not None)
    )


class CancelSender:
    """Sends the cancels asked of started jobs to their clusters, once a cycle, again every
    CANCEL_RETRY_S until the job ends; a site that does not answer gets them in the
    background (`CancelProbes`), which sets `wake` when a round ends."""

    def __init__(self, ctx: DispatchContext, wake: threading.Event) -> None:
        self.ctx = ctx
        self._probes = CancelProbes(wake)
        # When each job's cancel was last taken by its cluster (time.monotonic()).
        self._sent: dict[int, float] = {}

    def send(self) -> int:
        """Send the cancels that are due; how many the clusters took."""
        with self.ctx.sessions() as session:
            asked = session.execute(
                select(JobRow.id, JobRow.handle, SiteRow.name)
                .join(SiteRow, SiteRow.id == JobRow.site_id)
                .where(
                    JobRow.cancel_requested.is_(True),
                    JobRow.state.in_(ACTIVE_STATE_VALUES),
                    JobRow.handle.is_not(None),
                )
            ).all()
        sent = self._probed()
        due: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for job_id, handle, site in asked:
            last = self._sent.get(job_id)
            if handle is not None and (last is None or time.monotonic() - last >= CANCEL_RETRY_S):
                due[site].append((job_id, handle))
        for site, jobs in due.items():
            if not self.ctx.available(site):
                # Backed off for all else; its cancels are tried again in the background.
                self._probes.probe(site, self.ctx.engine(site), jobs)
                continue
            for job_id, handle in jobs:
                try:
                    with self.ctx.metrics.engine_call(site, "cancel"):
                        self.ctx.engine(site).cancel(handle)
                    self._sent[job_id] = time.monotonic()
                    sent += 1
                except EngineUnavailable as exc:
                    self.ctx.site_failed(site, str(exc))
                    break
        return sent

    def _probed(self) -> int:
        """Take in what the background cancels came to: a site that took one is back."""
        sent = 0
        for result in self._probes.collect():
            for job_id in result.sent:
                self._sent[job_id] = time.monotonic()
            sent += len(result.sent)
            if result.failure is None or result.sent:  # it answered: the site is back
                self.ctx.site_ok(result.site)
        return sent

    def ended(self, job_id: int) -> None:
        """The job ended: its cancel is no longer due."""
        self._sent.pop(job_id, None)

    def forget(self) -> None:
        """Forget which cancels were sent (another dispatcher may have sent others since)."""
        self._sent.clear()

    def close(self) -> None:
        """Stop the background cancels (a cancel not sent is sent by the next dispatcher)."""
        self._probes.close()
