"""The datasets a job reads, decrypted for it before it is launched and removed when its run
is over: here (`datasets`) for a `local` site, in a Slurm site's staging folder
(`site_staging`) for a Slurm site. This module picks the place; those two do the work.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import select

from fabriek.domain.job_states import ACTIVE_STATE_VALUES
from fabriek.domain.residency import DATASETS_ENV
from fabriek.engines.base import EngineJob
from fabriek.services.datasets import Vault
from fabriek.services.jobs import datasets as job_datasets
from fabriek.services.jobs import site_staging
from fabriek.services.jobs.datasets import DatasetUnavailable
from fabriek.services.jobs.dispatch_base import DispatchContext
from fabriek.store.tables import JobRow


class DatasetStaging:
    """Stages jobs' datasets with `vault`'s keys, under `staging_root` for `local` sites."""

    def __init__(
        self, ctx: DispatchContext, vault: Vault | None, staging_root: Path | None
    ) -> None:
        self.ctx = ctx
        self.vault = vault
        # Absolute: jobs run in directories of their own and must reach it from there.
        self.staging_root = staging_root.resolve() if staging_root is not None else None

    def with_datasets(
        self, engine_job: EngineJob, project_id: int, stored: list[dict[str, Any]], site: str
    ) -> EngineJob:
        """The job with its datasets decrypted for it, at $FABRIEK_DATASETS: here for a
        `local` site, in its staging folder, its owner's alone, for a Slurm site."""
        if self.vault is None or self.staging_root is None:
            raise DatasetUnavailable("this control plane has no dataset storage configured")
        registry = self.ctx.registry
        staging = registry.dataset_staging(site)
        if staging is None and registry.kind(site) != "local":
            raise DatasetUnavailable(f"{site} declares no dataset_staging in the sites file")
        job_id = engine_job.job_id
        with self.ctx.sessions() as session:
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

    def unstage(self, job_id: int) -> None:
        """Remove a job's decrypted datasets, wherever they were staged."""
        if self.staging_root is not None:
            job_datasets.unstage(self.staging_root, job_id)
        for staging in self.ctx.registry.dataset_stagings():  # where a Slurm site's job had it
            site_staging.unstage(staging, job_id)

    def sweep(self) -> None:
        """Remove decrypted datasets no active job needs (left by a crash, or by a job
        that ended while the control plane was down), here and in Slurm sites' folders."""
        stagings = self.ctx.registry.dataset_stagings()
        here = self.staging_root is not None and self.staging_root.is_dir()
        if not here and not stagings:
            return
        with self.ctx.sessions() as session:
            active = set(
                session.scalars(select(JobRow.id).where(JobRow.state.in_(ACTIVE_STATE_VALUES)))
            )
        if here and self.staging_root is not None:
            job_datasets.sweep(self.staging_root, active)
        for staging in stagings:
            site_staging.sweep(staging, active)
