"""The dispatcher: keeps the store and the engines in agreement, one cycle at a time.

A cycle is load -> act -> apply, and never holds a transaction across a call to a cluster:
1. place: waiting jobs get a site (first fit for now) and become STARTING, committed
   *before* any engine hears of them, so a crash never loses a started job;
2. launch: every STARTING job without an engine handle is submitted. Engines' submissions
   are idempotent per Fabriek job id, so after a crash a resubmission adopts the job the
   cluster already has instead of starting it twice;
3. observe: one batched poll per site; the changes are applied by the state rules;
4. cancel: jobs whose cancel was requested are stopped on their cluster.
A site whose cluster does not answer is backed off (exponentially, up to a minute) and its
jobs wait with the reason shown, so an outage costs one log line, not a storm.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fabriek.domain.access.tracks import AccessConfig
from fabriek.domain.capacity import SiteShape
from fabriek.domain.jobs import ACTIVE_STATES, JobSpec, JobState, can_transition
from fabriek.domain.residency import DATASETS_ENV
from fabriek.domain.units import GpuHours
from fabriek.domain.web_apps import app_prefix
from fabriek.engines.base import (
    Engine,
    EngineJob,
    EngineRejected,
    EngineUnavailable,
    Observation,
    Placement,
    poll_all,
)
from fabriek.scheduler.carbon import DEFAULT_HEAT_WEIGHT
from fabriek.services import audit
from fabriek.services.access.config import load_access_config
from fabriek.services.accounts.posix import job_owners
from fabriek.services.datasets import Vault
from fabriek.services.jobs import datasets as job_datasets
from fabriek.services.jobs.datasets import DatasetUnavailable
from fabriek.services.jobs.engine_registry import EngineRegistry
from fabriek.services.jobs.harvest_pull import AccountingPull
from fabriek.services.jobs.shapes import SiteShapeCache
from fabriek.services.jobs.site_health import SiteHealth
from fabriek.services.jobs.specs import spec_from_row
from fabriek.services.jobs.states import transition
from fabriek.services.scheduling import recent_run_shares, recent_usage, run_cycle
from fabriek.services.web_apps.secret import SECRET_VARIABLE, web_app_secret
from fabriek.store.tables import JobRow, ProjectRow, SiteRow, UserRow

log = logging.getLogger("fabriek.dispatch")
# Notices and e-mail are about days and thresholds: once a minute is prompt enough.
HOUSEKEEPING_EVERY_S = 60.0

CANCEL_RETRY_S = 30.0
USAGE_EVERY_S = 60.0


@dataclass
class CycleReport:
    placed: int = 0
    launched: int = 0
    observed: int = 0
    changed: int = 0
    cancelled: int = 0
    sites_down: list[str] = field(default_factory=list)


class Dispatcher:
    """Runs cycles against the store and the engines; one per control plane."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        registry: EngineRegistry,
        clock: Callable[[], datetime],
        submit_workers: int = 8,
        observe_every_s: float = 1.0,
        shapes: SiteShapeCache | None = None,
        access: AccessConfig | None = None,
        housekeeping: Callable[[datetime], object] | None = None,
        housekeeping_every_s: float = HOUSEKEEPING_EVERY_S,
        vault: Vault | None = None,
        staging_root: Path | None = None,
        heat_weight: float = DEFAULT_HEAT_WEIGHT,
        harvest: AccountingPull | None = None,
    ) -> None:
        """`shapes` is shared with the API, so a site registered there is seen at once.
        `housekeeping(now)` runs about once a minute (notices, e-mail). Jobs that read
        datasets get them decrypted under `staging_root` (with `vault`'s keys) while they
        run; without a vault such jobs fail to start. `heat_weight` weighs heat demand
        against carbon when flexible jobs are timed. `harvest` reads Slurm sites' accounting
        into the ledger, off the cycle's path."""
        self.sessions = sessions
        self.heat_weight = heat_weight
        self.vault = vault
        # Absolute: jobs run in directories of their own and must reach it from there.
        self.staging_root = staging_root.resolve() if staging_root is not None else None
        self.access = access or load_access_config()
        self.housekeeping = housekeeping
        self.housekeeping_every_s = housekeeping_every_s
        self._housekept_at = float("-inf")
        self.shapes = shapes or SiteShapeCache()
        self.registry = registry
        self.clock = clock
        self.wake = threading.Event()
        self.health: dict[str, SiteHealth] = defaultdict(SiteHealth)
        self._cancel_sent: dict[int, float] = {}
        self._pool = ThreadPoolExecutor(max_workers=submit_workers, thread_name_prefix="submit")
        self._gpus: dict[str, int] = {}
        # Wake-ups (submissions, cancels) start jobs at once; watching the clusters is paced,
        # so a burst of submissions does not become a burst of full-queue polls.
        self.observe_every_s = observe_every_s
        self._observed_at = float("-inf")
        self._usage: dict[tuple[str, str], GpuHours] = {}
        self._usage_read_at = float("-inf")
        self._run_shares: list[float] = []
        self.harvest = harvest

    # -- the loop ----------------------------------------------------------------------------

    def run(self, stop: threading.Event, interval_s: float, min_gap_s: float = 0.1) -> None:
        """Cycle until `stop` is set; a submission or cancel wakes it early, but cycles are
        at least `min_gap_s` apart, so a burst of submissions shares one cycle."""
        while not stop.is_set():
            began = time.monotonic()
            try:
                self.cycle()
            except Exception:  # a bad cycle must not kill the loop; the next one retries
                log.exception("dispatcher cycle failed")
            self.wake.wait(interval_s)
            self.wake.clear()
            rest = min_gap_s - (time.monotonic() - began)
            if rest > 0 and not stop.is_set():
                time.sleep(rest)

    def cycle(self) -> CycleReport:
        report = CycleReport()
        shapes = self._shapes()
        report.placed = self._place(shapes)
        report.launched = self._launch()
        if time.monotonic() - self._observed_at >= self.observe_every_s:
            self._observed_at = time.monotonic()
            report.observed, report.changed = self._observe()
        report.cancelled = self._cancel()
        if self.harvest is not None:  # in a thread of its own: the cycle does not wait
            self.harvest.tick(s for s in self._gpus if self.registry.kind(s) != "local")
        report.sites_down = sorted(s for s, h in self.health.items() if h.down_since is not None)
        if self.housekeeping is not None and (
            time.monotonic() - self._housekept_at >= self.housekeeping_every_s
        ):
            self._housekept_at = time.monotonic()
            try:
                self._sweep_staging()
                self.housekeeping(self.clock())
            except Exception:  # notices are retried next time; jobs must keep flowing
                log.exception("housekeeping failed")
        return report

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        if self.harvest is not None:
            self.harvest.close()

    # -- sites ---------------------------------------------------------------------------------

    def _shapes(self) -> list[SiteShape]:
        # Sites change a few times a year: the cycle reads them through the cache.
        with self.sessions() as session:
            shapes = self.shapes.get(session)
        self._gpus = {s.name: sum(g.count * g.gpus_per_node for g in s.groups) for s in shapes}
        return shapes

    def engine(self, site: str) -> Engine:
        return self.registry.engine(site, self._gpus.get(site, 0))

    def _available(self, site: str) -> bool:
        return self.health[site].available()

    def _site_failed(self, site: str, reason: str) -> None:
        self.health[site].failed(site, reason)

    def _site_ok(self, site: str) -> None:
        self.health[site].ok(site)

    # -- 1. place --------------------------------------------------------------------------------

    def _place(self, shapes: list[SiteShape]) -> int:
        """One scheduling cycle over every site: `fabriek.scheduler.schedule`, the same
        function the simulator replays traces with."""
        down = frozenset(s.name for s in shapes if not self._available(s.name))
        depth = {s.name: self.registry.queue_depth(s.name, self._gpus[s.name]) for s in shapes}
        reasons = {s: self.health[s].reason for s in down}
        now = self.clock()
        with self.sessions() as session:
            # Fair-share usage moves by the hour: reading it once a minute is plenty.
            if time.monotonic() - self._usage_read_at > USAGE_EVERY_S:
                self._usage = recent_usage(session, now.timestamp())
                self._run_shares = recent_run_shares(session, now)
                self._usage_read_at = time.monotonic()
            placed = run_cycle(
                session, shapes, now, depth, down, reasons, self.access, self._usage,
                self.heat_weight, self._run_shares,
            )  # fmt: skip
            session.commit()
        return placed.started

    @staticmethod
    def _wait(job: JobRow, reason: str) -> None:
        if job.reason != reason:  # write only what changed
            job.reason = reason

    # -- 2. launch ---------------------------------------------------------------------------------

    def _launch(self) -> int:
        """Hand every job the scheduler started (STARTING, no handle yet) to its engine."""
        work, reads = self._to_launch()
        if not work:
            return 0
        results = list(self._pool.map(lambda item: self._submit_one(item, reads), work))
        return self._record_launches(results)

    def _to_launch(
        self,
    ) -> tuple[list[tuple[int, str, EngineJob]], dict[int, tuple[int, list[dict[str, Any]]]]]:
        """The jobs to start, each with its site and owner; and what datasets each reads."""
        with self.sessions() as session:
            todo = session.execute(
                select(JobRow, SiteRow.name, UserRow.username, ProjectRow.name)
                .join(SiteRow, SiteRow.id == JobRow.site_id)
                .join(UserRow, UserRow.id == JobRow.user_id)
                .join(ProjectRow, ProjectRow.id == JobRow.project_id)
                .where(JobRow.state == JobState.STARTING.value, JobRow.handle.is_(None))
                .order_by(JobRow.id)
            ).all()
            # Whom each runs as: the person's own POSIX account, charged to the project's
            # group (its Slurm account); never the control plane, never a shared account.
            owners = job_owners(
                session, {(j.user_id, j.project_id) for j, *_ in todo}, self.registry.id_base
            )
            work = [
                (
                    job.id,
                    site,
                    EngineJob(
                        job.id,
                        self._engine_spec(job, site),
                        Placement(),
                        owner=owners[(job.user_id, job.project_id)],
                    ),
                )
                for job, site, _user, _project in todo
            ]
            reads = {job.id: (job.project_id, job.datasets) for job, *_ in todo if job.datasets}
        return work, reads

    def _submit_one(
        self,
        item: tuple[int, str, EngineJob],
        reads: Mapping[int, tuple[int, list[dict[str, Any]]]],
    ) -> tuple[int, str, str | Exception]:
        """Stage one job's datasets and submit it: its handle, or why it did not start."""
        job_id, site, engine_job = item
        if not self._available(site):
            reason = self.health[site].reason or "site unavailable"
            return job_id, site, EngineUnavailable(reason)
        try:
            if job_id in reads:
                engine_job = self._with_datasets(engine_job, *reads[job_id])
        except DatasetUnavailable as exc:
            return job_id, site, EngineRejected(f"DatasetUnavailable: {exc}")
        except Exception as exc:  # the plaintext could not be staged: try again later
            log.exception("staging the datasets of job %s failed", job_id)
            return job_id, site, EngineUnavailable(f"staging its datasets failed: {exc}")
        try:
            return job_id, site, self.engine(site).submit(engine_job)
        except (EngineUnavailable, EngineRejected) as exc:
            return job_id, site, exc
        except Exception as exc:  # an engine bug must not lose the job: it waits
            log.exception("submitting job %s to %s failed", job_id, site)
            return job_id, site, EngineUnavailable(f"internal error: {exc}")

    def _record_launches(self, results: list[tuple[int, str, str | Exception]]) -> int:
        """Record each submission's outcome: its handle, failed for good, or back to wait."""
        now = self.clock()
        launched = 0
        with self.sessions() as session:
            rows = {
                j.id: j
                for j in session.scalars(
                    select(JobRow).where(JobRow.id.in_([r[0] for r in results]))
                )
            }
            started: list[tuple[JobRow, str]] = []
            for job_id, site, outcome in results:
                job = rows.get(job_id)
                if job is None or job.state != JobState.STARTING.value:
                    continue
                if isinstance(outcome, str):
                    job.handle = outcome
                    launched += 1
                    started.append((job, site))
                    self._site_ok(site)
                elif isinstance(outcome, EngineRejected):
                    self._unstage(job_id)
                    job.ended_at = now
                    transition(
                        session, job, JobState.FAILED, f"{site} refused the job: {outcome}", now
                    )
                else:
                    if "free GPUs" not in str(outcome) and "staging" not in str(outcome):
                        self._site_failed(site, str(outcome))  # busy is not broken
                    self._unstage(job_id)
                    _unplace(job)
                    transition(
                        session, job, JobState.PENDING, f"SiteUnavailable: {site}: {outcome}", now
                    )
            audit.record_job_starts(session, started, now)
            session.commit()
        return launched

    def _with_datasets(
        self, engine_job: EngineJob, project_id: int, stored: list[dict[str, Any]]
    ) -> EngineJob:
        """The job with its datasets decrypted for it, at $FABRIEK_DATASETS."""
        if self.vault is None or self.staging_root is None:
            raise DatasetUnavailable("this control plane has no dataset storage configured")
        with self.sessions() as session:
            path = job_datasets.stage(
                session, self.vault, self.staging_root, engine_job.job_id, project_id, stored
            )
        if path is None:
            return engine_job
        env = {**engine_job.spec.environment, DATASETS_ENV: str(path)}
        return replace(
            engine_job, spec=replace(engine_job.spec, environment=env), datasets_dir=path
        )

    def _unstage(self, job_id: int) -> None:
        if self.staging_root is not None:
            job_datasets.unstage(self.staging_root, job_id)

    def _sweep_staging(self) -> None:
        """Remove decrypted datasets no active job needs (left by a crash, or by a job
        that ended while the control plane was down)."""
        if self.staging_root is None or not self.staging_root.is_dir():
            return
        with self.sessions() as session:
            active = set(
                session.scalars(
                    select(JobRow.id).where(JobRow.state.in_([s.value for s in ACTIVE_STATES]))
                )
            )
        job_datasets.sweep(self.staging_root, active)

    def _engine_spec(self, job: JobRow, site: str) -> JobSpec:
        spec = spec_from_row(job)
        if job.placed_gpu_type and not spec.gpu_type:
            spec = replace(spec, gpu_type=job.placed_gpu_type)
        if spec.web_port is not None:
            # Only the job and Fabriek's proxy know it: the app's key (docs/workloads.md).
            secret = web_app_secret(self.registry.state_dir, job.id)
            web = {SECRET_VARIABLE: secret, "FABRIEK_WEB_BASE_URL": app_prefix(job.id)}
            spec = replace(spec, environment={**spec.environment, **web})
        if self.registry.kind(site) == "local" and spec.nodes != 1:
            # The local engine is one machine: a multi-node job runs as one process there.
            spec = replace(spec, nodes=1)
        return spec

    # -- 3. observe --------------------------------------------------------------------------------

    def _observe(self) -> tuple[int, int]:
        with self.sessions() as session:
            active = session.execute(
                select(JobRow.id, JobRow.handle, SiteRow.name)
                .join(SiteRow, SiteRow.id == JobRow.site_id)
                .where(
                    JobRow.state.in_([s.value for s in ACTIVE_STATES]), JobRow.handle.is_not(None)
                )
            ).all()
        by_site: dict[str, dict[int, str]] = defaultdict(dict)
        for job_id, handle, site in active:
            if handle is not None:
                by_site[site][job_id] = handle
        seen: dict[int, Observation] = {}
        for site, handles in by_site.items():
            if not self._available(site):
                continue
            try:
                seen.update(poll_all(self.engine(site), handles))
                self._site_ok(site)
            except EngineUnavailable as exc:
                self._site_failed(site, str(exc))
        if not seen:
            return 0, 0
        return len(seen), self._apply(seen)

    def _apply(self, seen: dict[int, Observation]) -> int:
        now = self.clock()
        changed = 0
        with self.sessions() as session:
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
                    self._wait(
                        job,
                        f"queued on the cluster: {obs.reason}"
                        if obs.reason
                        else "queued on the cluster",
                    )
                    continue
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
                    self._cancel_sent.pop(job.id, None)
                    # The run is over: its decrypted datasets go with it.
                    self._unstage(job.id)
                reason = obs.reason or ("started" if new == JobState.RUNNING else None)
                if new == JobState.CANCELLED and job.preempted_for is not None:
                    self._requeue(session, job, now)
                    changed += 1
                    continue
                if new == JobState.CANCELLED and job.cancel_requested and not obs.reason:
                    reason = "cancelled on request"
                transition(session, job, new, reason, now)
                changed += 1
            session.commit()
        return changed

    @staticmethod
    def _requeue(session: Session, job: JobRow, now: datetime) -> None:
        """A preempted job stopped: it waits again, keeping its place by submission time."""
        if JobState(job.state) == JobState.STARTING:
            transition(session, job, JobState.RUNNING, "started", now)
        transition(session, job, JobState.PREEMPTED, f"preempted for job {job.preempted_for}", now)
        _unplace(job)
        job.handle = None
        job.started_at = None
        job.energy_readings = None
        job.exit_code = None
        job.cancel_requested = False
        job.preempted_for = None
        transition(session, job, JobState.PENDING, "requeued after preemption", now)

    # -- 4. cancel ---------------------------------------------------------------------------------

    def _cancel(self) -> int:
        with self.sessions() as session:
            asked = session.execute(
                select(JobRow.id, JobRow.handle, SiteRow.name)
                .join(SiteRow, SiteRow.id == JobRow.site_id)
                .where(
                    JobRow.cancel_requested.is_(True),
                    JobRow.state.in_([s.value for s in ACTIVE_STATES]),
                    JobRow.handle.is_not(None),
                )
            ).all()
        sent = 0
        for job_id, handle, site in asked:
            last = self._cancel_sent.get(job_id)
            if (
                (last is not None and time.monotonic() - last < CANCEL_RETRY_S)
                or not self._available(site)
                or handle is None
            ):
                continue
            try:
                self.engine(site).cancel(handle)
                self._cancel_sent[job_id] = time.monotonic()
                sent += 1
            except EngineUnavailable as exc:
                self._site_failed(site, str(exc))
        return sent


def _unplace(job: JobRow) -> None:
    """Forget where a job was to run: it waits to be placed again."""
    job.site_id = None
    job.placed_gpu_type = None
    job.placement = None
