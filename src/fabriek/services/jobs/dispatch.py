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
from fabriek.domain.leases import DISPATCHER, HOUSEKEEPING
from fabriek.domain.residency import DATASETS_ENV
from fabriek.domain.units import GpuHours
from fabriek.domain.web_apps import JUPYTER_VARIABLE, JUPYTERLAB, app_prefix, is_idle_stop
from fabriek.engines.base import (
    ContainerImage,
    Engine,
    EngineJob,
    EngineRejected,
    EngineUnavailable,
    EngineUnsure,
    Observation,
    Placement,
    poll_all,
)
from fabriek.scheduler.carbon import DEFAULT_HEAT_WEIGHT
from fabriek.services import audit
from fabriek.services.access.config import load_access_config
from fabriek.services.accounts.posix import job_owners
from fabriek.services.datasets import Vault
from fabriek.services.images import ImageRefused, ImageService, ImageUnavailable
from fabriek.services.jobs import datasets as job_datasets
from fabriek.services.jobs import site_staging
from fabriek.services.jobs.cancels import UNCONFIRMED, CancelProbes, end_unlaunched, ran_unseen
from fabriek.services.jobs.datasets import DatasetUnavailable
from fabriek.services.jobs.dispatch_metrics import DispatchMetrics
from fabriek.services.jobs.engine_registry import EngineRegistry
from fabriek.services.jobs.harvest_pull import AccountingPull
from fabriek.services.jobs.leadership import Gained, LeaseKeeper, LeaseLost
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
# The longest an engine's call may take (the Slurm engine's command time-out): a job a dead
# or stalled dispatcher was submitting is started by its successor only after it, when the
# old submission has landed (and is adopted by its tag) or never will.
INHERITED_GRACE_S = 30.0
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
        images: ImageService | None = None,
        leases: LeaseKeeper | None = None,
    ) -> None:
        """`shapes` is shared with the API, so a site registered there is seen at once.
        `housekeeping(now)` runs about once a minute (notices, e-mail). Jobs that read
        datasets get them decrypted under `staging_root` (with `vault`'s keys) while they
        run; without a vault such jobs fail to start. `heat_weight` weighs heat demand
        against carbon when flexible jobs are timed. `harvest` reads Slurm sites' accounting
        into the ledger, off the cycle's path. `images` pins a job's container image by
        digest and gives it a pull credential for the factory's registry. With `leases`, it
        dispatches only while this server holds the dispatcher's lease, and housekeeps only
        while it holds the housekeeping's; without, it always does both."""
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
        # Cycle times, calls to the clusters, sites up: read by /metrics.
        self.metrics = DispatchMetrics(self.health)
        self._cancel_sent: dict[int, float] = {}
        # Cancels for sites that do not answer, retried off the cycle's thread.
        self._probes = CancelProbes(self.wake)
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
        self.images = images
        # Digests found while starting jobs (submitted while the registry was down), to be
        # recorded with their handles.
        self._digests: dict[int, str] = {}
        self.leases = leases
        # Jobs a previous dispatcher may have been submitting when it died: held back until
        # its submissions have surely landed (see INHERITED_GRACE_S).
        self._inherited: set[int] = set()
        self._inherited_until = float("-inf")

    # -- the loop ----------------------------------------------------------------------------

    def run(self, stop: threading.Event, interval_s: float, min_gap_s: float = 0.1) -> None:
        """Cycle until `stop` is set; a submission or cancel wakes it early, but cycles are
        at least `min_gap_s` apart, so a burst of submissions shares one cycle."""
        while not stop.is_set():
            began = time.monotonic()
            try:
                self._step()
            except LeaseLost as exc:  # another server dispatches now: this one stops
                log.warning("dispatcher cycle dropped: %s", exc)
            except Exception:  # a bad cycle must not kill the loop; the next one retries
                log.exception("dispatcher cycle failed")
            self.wake.wait(interval_s)
            self.wake.clear()
            rest = min_gap_s - (time.monotonic() - began)
            if rest > 0 and not stop.is_set():
                time.sleep(rest)

    def _step(self) -> None:
        """One cycle of what this server's leases let it do."""
        if self.leases is None:
            self.cycle()
            return
        for gained in self.leases.gained():
            if gained.role == DISPATCHER:
                self._took_over(gained)
        dispatch, housekeep = self.leases.holds(DISPATCHER), self.leases.holds(HOUSEKEEPING)
        if dispatch or housekeep:
            self.cycle(dispatch=dispatch, housekeep=housekeep)

    def _took_over(self, gained: Gained) -> None:
        """This server dispatches from now: what it remembered of the clusters is stale
        (another server submitted and cancelled meanwhile), so it asks them afresh."""
        log.info("dispatching from now (epoch %s)", gained.epoch)
        self.registry.forget_remote()
        self._cancel_sent.clear()
        self._observed_at = float("-inf")
        if not gained.inherits:
            return
        with self.sessions() as session:
            self._inherited = set(
                session.scalars(
                    select(JobRow.id).where(
                        JobRow.state == JobState.STARTING.value, JobRow.handle.is_(None)
                    )
                )
            )
        self._inherited_until = time.monotonic() + INHERITED_GRACE_S

    def _fence(self, session: Session) -> None:
        """Commit only as the dispatcher (LeaseLost otherwise)."""
        if self.leases is not None:
            self.leases.fence(session, DISPATCHER)

    def cycle(self, dispatch: bool = True, housekeep: bool = True) -> CycleReport:
        report = CycleReport()
        if dispatch:
            self._dispatch(report)
        if (
            housekeep
            and self.housekeeping is not None
            and time.monotonic() - self._housekept_at >= self.housekeeping_every_s
        ):
            self._housekept_at = time.monotonic()
            try:
                self._sweep_staging()
                self.housekeeping(self.clock())
            except Exception:  # notices are retried next time; jobs must keep flowing
                log.exception("housekeeping failed")
        return report

    def _dispatch(self, report: CycleReport) -> None:
        began = time.perf_counter()
        # Cancels first: a cluster that comes back hears of them before anything else.
        report.cancelled = self._cancel()
        shapes = self._shapes()
        report.placed = self._place(shapes)
        # Jobs this cycle preempted are told before the jobs they make room for start.
        report.cancelled += self._cancel()
        report.launched = self._launch()
        if time.monotonic() - self._observed_at >= self.observe_every_s:
            self._observed_at = time.monotonic()
            report.observed, report.changed = self._observe()
        if self.harvest is not None:  # in a thread of its own: the cycle does not wait
            self.harvest.tick(s for s in self._gpus if self.registry.kind(s) != "local")
        report.sites_down = sorted(s for s, h in self.health.items() if h.down_since is not None)
        self.metrics.cycle_done(time.perf_counter() - began)

    def close(self) -> None:
        self._probes.close()
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
            scheduling = time.perf_counter()
            placed = run_cycle(
                session, shapes, now, depth, down, reasons, self.access, self._usage,
                self.heat_weight, self._run_shares,
            )  # fmt: skip
            self.metrics.scheduling.observe(time.perf_counter() - scheduling)
            self._fence(session)
            session.commit()
        return placed.started

    @staticmethod
    def _wait(job: JobRow, reason: str) -> None:
        if job.reason != reason:  # write only what changed
            job.reason = reason

    # -- 2. launch ---------------------------------------------------------------------------------

    def _launch(self) -> int:
        """Hand every job the scheduler started (STARTING, no handle yet) to its engine;
        one whose cancel was asked meanwhile ends instead."""
        with self.sessions() as session:
            if end_unlaunched(session, self.clock()):
                self._fence(session)
                session.commit()
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
            if time.monotonic() < self._inherited_until:
                todo = [t for t in todo if t[0].id not in self._inherited]
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
                        image=ContainerImage(job.container_image, job.image_digest)
                        if job.container_image
                        else None,
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
        if self.leases is not None and not self.leases.holds(DISPATCHER):
            return job_id, site, LeaseLost("this server's dispatcher lease ran out")
        if not self._available(site):
            reason = self.health[site].reason or "site unavailable"
            return job_id, site, EngineUnavailable(reason)
        try:
            if job_id in reads:
                engine_job = self._with_datasets(engine_job, *reads[job_id], site)
        except DatasetUnavailable as exc:
            return job_id, site, EngineRejected(f"DatasetUnavailable: {exc}")
        except Exception as exc:  # the plaintext could not be staged: try again later
            log.exception("staging the datasets of job %s failed", job_id)
            return job_id, site, EngineUnavailable(f"staging its datasets failed: {exc}")
        try:
            engine_job = self._with_image(engine_job)
        except (ImageUnavailable, EngineRejected) as exc:
            return job_id, site, exc
        try:
            with self.metrics.engine_call(site, "submit"):
                handle = self.engine(site).submit(engine_job)
            return job_id, site, handle
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
                # Only a job still waiting for its handle: never one recorded meanwhile.
                if job is None or job.state != JobState.STARTING.value or job.handle is not None:
                    continue
                if isinstance(outcome, LeaseLost):
                    continue
                if isinstance(outcome, str):
                    job.handle = outcome
                    if (digest := self._digests.pop(job_id, None)) and not job.image_digest:
                        job.image_digest = digest
                    launched += 1
                    started.append((job, site))
                    self._site_ok(site)
                elif isinstance(outcome, EngineRejected):
                    self._unstage(job_id)
                    job.ended_at = now
                    transition(
                        session, job, JobState.FAILED, f"{site} refused the job: {outcome}", now
                    )
                elif isinstance(outcome, EngineUnsure) or (
                    isinstance(outcome, EngineUnavailable)
                    and (job.reason or "").startswith(UNCONFIRMED)
                ):
                    # It may run there already: it stays there, to be sent again (the
                    # engine adopts it by its id), until the site answers. A site left
                    # alone meanwhile was not called: that is no new failure.
                    if isinstance(outcome, EngineUnsure) or self._available(site):
                        self._site_failed(site, str(outcome))
                    self._wait(job, f"{UNCONFIRMED}: {site}: {outcome}"[:500])
                elif isinstance(outcome, ImageUnavailable):
                    # The registry, not the site: the job keeps its place and waits, unless
                    # its cancel was asked meanwhile (no engine has it: it ends here).
                    self._unstage(job_id)
                    if job.cancel_requested:
                        job.ended_at = now
                        transition(session, job, JobState.CANCELLED, "cancelled on request", now)
                    else:
                        self._wait(job, str(outcome))
                else:
                    if "free GPUs" not in str(outcome) and "staging" not in str(outcome):
                        self._site_failed(site, str(outcome))  # busy is not broken
                    self._unstage(job_id)
                    if job.cancel_requested:  # no cluster has it: the cancel ends it here
                        job.ended_at = now
                        transition(session, job, JobState.CANCELLED, "cancelled on request", now)
                        continue
                    _unplace(job)
                    transition(
                        session, job, JobState.PENDING, f"SiteUnavailable: {site}: {outcome}", now
                    )
            audit.record_job_starts(session, started, now)
            self._fence(session)
            session.commit()
        return launched

    def _with_datasets(
        self, engine_job: EngineJob, project_id: int, stored: list[dict[str, Any]], site: str
    ) -> EngineJob:
        """The job with its datasets decrypted for it, at $FABRIEK_DATASETS: here for a
        `local` site, in its staging folder, its owner's alone, for a Slurm site."""
        if self.vault is None or self.staging_root is None:
            raise DatasetUnavailable("this control plane has no dataset storage configured")
        staging = self.registry.dataset_staging(site)
        if staging is None and self.registry.kind(site) != "local":
            raise DatasetUnavailable(f"{site} declares no dataset_staging in the sites file")
        job_id = engine_job.job_id
        with self.sessions() as session:
            if staging is not None:
                path = site_staging.stage(
                    session, self.vault, staging, job_id, project_id, stored, engine_job.owner
                )
            else:
                path = job_datasets.stage(
                    session, self.vault, self.staging_root, job_id, project_id, stored
                )
        if path is None:
            return engine_job
        env = {**engine_job.spec.environment, DATASETS_ENV: str(path)}
        return replace(
            engine_job, spec=replace(engine_job.spec, environment=env), datasets_dir=path
        )

    def _with_image(self, engine_job: EngineJob) -> EngineJob:
        """The job with its image pinned by digest and a pull credential for its project
        (the factory's registry); ImageUnavailable while the registry is down."""
        image, owner = engine_job.image, engine_job.owner
        if self.images is None or image is None or owner is None:
            return engine_job
        try:
            resolved = self.images.for_job(
                engine_job.job_id, image.reference, image.digest, owner.project, self.clock()
            )
        except ImageRefused as exc:
            raise EngineRejected(str(exc)) from exc
        if resolved.digest and not image.digest:
            self._digests[engine_job.job_id] = resolved.digest
        return replace(engine_job, image=resolved)

    def _unstage(self, job_id: int) -> None:
        if self.staging_root is not None:
            job_datasets.unstage(self.staging_root, job_id)
        for staging in self.registry.dataset_stagings():  # where a Slurm site's job had it
            site_staging.unstage(staging, job_id)

    def _sweep_staging(self) -> None:
        """Remove decrypted datasets no active job needs (left by a crash, or by a job
        that ended while the control plane was down), here and in Slurm sites' folders."""
        stagings = self.registry.dataset_stagings()
        here = self.staging_root is not None and self.staging_root.is_dir()
        if not here and not stagings:
            return
        with self.sessions() as session:
            active = set(
                session.scalars(
                    select(JobRow.id).where(JobRow.state.in_([s.value for s in ACTIVE_STATES]))
                )
            )
        if here and self.staging_root is not None:
            job_datasets.sweep(self.staging_root, active)
        for staging in stagings:
            site_staging.sweep(staging, active)

    def _engine_spec(self, job: JobRow, site: str) -> JobSpec:
        spec = spec_from_row(job)
        if job.placed_gpu_type and not spec.gpu_type:
            spec = replace(spec, gpu_type=job.placed_gpu_type)
        if spec.web_port is not None:
            # Only the job and Fabriek's proxy know it: the app's key (docs/workloads.md).
            secret = web_app_secret(self.registry.state_dir, job.id)
            web = {SECRET_VARIABLE: secret, "FABRIEK_WEB_BASE_URL": app_prefix(job.id)}
            jupyter = self.registry.jupyter(site)
            if spec.web_app == JUPYTERLAB and jupyter and not spec.container_image:
                web[JUPYTER_VARIABLE] = jupyter  # the site's own Jupyter (its sites file)
            spec = replace(spec, environment={**spec.environment, **web})
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
                with self.metrics.engine_call(site, "poll"):
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
                    if job.cancel_requested:
                        continue  # its reason says the cancel is on its way
                    self._wait(
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
                    self._cancel_sent.pop(job.id, None)
                    # The run is over: its decrypted datasets go with it.
                    self._unstage(job.id)
                reason = obs.reason or ("started" if new == JobState.RUNNING else None)
                if new == JobState.CANCELLED and job.preempted_for is not None:
                    self._requeue(session, job, now)
                    changed += 1
                    continue
                if new == JobState.CANCELLED and job.cancel_requested and is_idle_stop(job.reason):
                    reason = job.reason  # an idle notebook keeps the reason it was stopped for
                elif new == JobState.CANCELLED and job.cancel_requested and not obs.reason:
                    reason = "cancelled on request"
                transition(session, job, new, reason, now)
                changed += 1
            self._fence(session)
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
        sent = self._probed()
        due: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for job_id, handle, site in asked:
            last = self._cancel_sent.get(job_id)
            if handle is not None and (last is None or time.monotonic() - last >= CANCEL_RETRY_S):
                due[site].append((job_id, handle))
        for site, jobs in due.items():
            if not self._available(site):
                # Backed off for all else; its cancels are tried again in the background.
                self._probes.probe(site, self.engine(site), jobs)
                continue
            for job_id, handle in jobs:
                try:
                    with self.metrics.engine_call(site, "cancel"):
                        self.engine(site).cancel(handle)
                    self._cancel_sent[job_id] = time.monotonic()
                    sent += 1
                except EngineUnavailable as exc:
                    self._site_failed(site, str(exc))
                    break
        return sent

    def _probed(self) -> int:
        """Take in what the background cancels came to: a site that took one is back."""
        sent = 0
        for result in self._probes.collect():
            for job_id in result.sent:
                self._cancel_sent[job_id] = time.monotonic()
            sent += len(result.sent)
            if result.failure is None or result.sent:  # it answered: the site is back
                self._site_ok(result.site)
        return sent


def _unplace(job: JobRow) -> None:
    """Forget where a job was to run: it waits to be placed again."""
    job.site_id = None
    job.placed_gpu_type = None
    job.placement = None
