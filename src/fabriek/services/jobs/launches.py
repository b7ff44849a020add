"""Launching placed jobs: every job the scheduler started (STARTING, no engine handle yet)
is handed to its site's engine, with its datasets staged and its image pinned, in a pool of
threads; each submission's outcome is then recorded in one transaction.

Engines' submissions are idempotent per Fabriek job id, so a job sent again after a crash or
an unanswered submission is adopted by its cluster, never started twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from sqlalchemy import select

from fabriek.domain.job_states import JobState
from fabriek.domain.jobs import JobSpec
from fabriek.domain.leases import DISPATCHER
from fabriek.domain.web_apps import JUPYTER_VARIABLE, JUPYTERLAB, app_prefix
from fabriek.engines.base import (
    ContainerImage,
    EngineJob,
    EngineRejected,
    EngineUnavailable,
    EngineUnsure,
    Placement,
)
from fabriek.services import audit
from fabriek.services.accounts.posix import job_owners
from fabriek.services.images import ImageRefused, ImageService, ImageUnavailable
from fabriek.services.jobs.cancels import UNCONFIRMED, end_unlaunched
from fabriek.services.jobs.datasets import DatasetUnavailable
from fabriek.services.jobs.dispatch_base import DispatchContext, unplace, wait
from fabriek.services.jobs.leadership import LeaseLost
from fabriek.services.jobs.specs import spec_from_row
from fabriek.services.jobs.staging import DatasetStaging
from fabriek.services.jobs.states import transition
from fabriek.services.web_apps.secret import SECRET_VARIABLE, web_app_secret
from fabriek.store.tables import JobRow, ProjectRow, SiteRow, UserRow

log = logging.getLogger("fabriek.dispatch")

# The longest an engine's call may take (the Slurm engine's command time-out): a job a dead
# or stalled dispatcher was submitting is started by its successor only after it, when the
# old submission has landed (and is adopted by its tag) or never will.
INHERITED_GRACE_S = 30.0


class Launcher:
    """Submits placed jobs to their engines, `submit_workers` at a time."""

    def __init__(
        self,
        ctx: DispatchContext,
        staging: DatasetStaging,
        images: ImageService | None,
        submit_workers: int,
    ) -> None:
        """`images` pins a job's container image by digest and gives it a pull credential
        for the factory's registry."""
        self.ctx = ctx
        self.staging = staging
        self.images = images
        self._pool = ThreadPoolExecutor(max_workers=submit_workers, thread_name_prefix="submit")
        # Digests found while starting jobs (submitted while the registry was down), to be
        # recorded with their handles.
        self._digests: dict[int, str] = {}
        # Jobs a previous dispatcher may have been submitting when it died: held back until
        # its submissions have surely landed (see INHERITED_GRACE_S).
        self._inherited: set[int] = set()
        self._inherited_until = float("-inf")

    def hold_inherited(self) -> None:
        """Hold back the jobs a previous dispatcher left starting without a handle."""
        with self.ctx.sessions() as session:
            self._inherited = set(
                session.scalars(
                    select(JobRow.id).where(
                        JobRow.state == JobState.STARTING.value, JobRow.handle.is_(None)
                    )
                )
            )
        self._inherited_until = time.monotonic() + INHERITED_GRACE_S

    def close(self) -> None:
        """Wait for the submissions under way, then stop the pool."""
        self._pool.shutdown(wait=True)

    def launch(self) -> int:
        """Hand every job the scheduler started (STARTING, no handle yet) to its engine;
        one whose cancel was asked meanwhile ends instead."""
        with self.ctx.sessions() as session:
            if end_unlaunched(session, self.ctx.clock()):
                self.ctx.fence(session)
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
        with self.ctx.sessions() as session:
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
                session, {(j.user_id, j.project_id) for j, *_ in todo}, self.ctx.registry.id_base
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
        if self.ctx.leases is not None and not self.ctx.leases.holds(DISPATCHER):
            return job_id, site, LeaseLost("this server's dispatcher lease ran out")
        if not self.ctx.available(site):
            reason = self.ctx.health[site].reason or "site unavailable"
            return job_id, site, EngineUnavailable(reason)
        try:
            if job_id in reads:
                engine_job = self.staging.with_datasets(engine_job, *reads[job_id], site)
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
            with self.ctx.metrics.engine_call(site, "submit"):
                handle = self.ctx.engine(site).submit(engine_job)
            return job_id, site, handle
        except (EngineUnavailable, EngineRejected) as exc:
            return job_id, site, exc
        except Exception as exc:  # an engine bug must not lose the job: it waits
            log.exception("submitting job %s to %s failed", job_id, site)
            return job_id, site, EngineUnavailable(f"internal error: {exc}")

    def _record_launches(self, results: list[tuple[int, str, str | Exception]]) -> int:
        """Record each submission's outcome: its handle, failed for good, or back to wait."""
        now = self.ctx.clock()
        launched = 0
        with self.ctx.sessions() as session:
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
                    self.ctx.site_ok(site)
                elif isinstance(outcome, EngineRejected):
                    self.staging.unstage(job_id)
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
                    if isinstance(outcome, EngineUnsure) or self.ctx.available(site):
                        self.ctx.site_failed(site, str(outcome))
                    wait(job, f"{UNCONFIRMED}: {site}: {outcome}"[:500])
                elif isinstance(outcome, ImageUnavailable):
                    # The registry, not the site: the job keeps its place and waits, unless
                    # its cancel was asked meanwhile (no engine has it: it ends here).
                    self.staging.unstage(job_id)
                    if job.cancel_requested:
                        job.ended_at = now
                        transition(session, job, JobState.CANCELLED, "cancelled on request", now)
                    else:
                        wait(job, str(outcome))
                else:
                    if "free GPUs" not in str(outcome) and "staging" not in str(outcome):
                        self.ctx.site_failed(site, str(outcome))  # busy is not broken
                    self.staging.unstage(job_id)
                    if job.cancel_requested:  # no cluster has it: the cancel ends it here
                        job.ended_at = now
                        transition(session, job, JobState.CANCELLED, "cancelled on request", now)
                        continue
                    unplace(job)
                    transition(
                        session, job, JobState.PENDING, f"SiteUnavailable: {site}: {outcome}", now
                    )
            audit.record_job_starts(session, started, now)
            self.ctx.fence(session)
            session.commit()
        return launched

    def _with_image(self, engine_job: EngineJob) -> EngineJob:
        """The job with its image pinned by digest and a pull credential for its project
        (the factory's registry); ImageUnavailable while the registry is down."""
        image, owner = engine_job.image, engine_job.owner
        if self.images is None or image is None or owner is None:
            return engine_job
        try:
            resolved = self.images.for_job(
                engine_job.job_id, image.reference, image.digest, owner.project, self.ctx.clock()
            )
        except ImageRefused as exc:
            raise EngineRejected(str(exc)) from exc
        if resolved.digest and not image.digest:
            self._digests[engine_job.job_id] = resolved.digest
        return replace(engine_job, image=resolved)

    def _engine_spec(self, job: JobRow, site: str) -> JobSpec:
        spec = spec_from_row(job)
        if job.placed_gpu_type and not spec.gpu_type:
            spec = replace(spec, gpu_type=job.placed_gpu_type)
        if spec.web_port is not None:
            # Only the job and Fabriek's proxy know it: the app's key (docs/workloads.md).
            secret = web_app_secret(self.ctx.registry.state_dir, job.id)
            web = {SECRET_VARIABLE: secret, "FABRIEK_WEB_BASE_URL": app_prefix(job.id)}
            jupyter = self.ctx.registry.jupyter(site)
            if spec.web_app == JUPYTERLAB and jupyter and not spec.container_image:
                web[JUPYTER_VARIABLE] = jupyter  # the site's own Jupyter (its sites file)
            spec = replace(spec, environment={**spec.environment, **web})
        return spec
