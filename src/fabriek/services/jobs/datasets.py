"""Datasets in jobs: resolve what a job names, keep it to the sites the data allows, and
stage the plaintext for exactly as long as the job runs.

At submission each named dataset is resolved to one version and checked: the job's project
must own it or hold a grant. The versions and their terms are stored with the job, so the
scheduler's residency rule needs no further reads (`sites_for`). When the job starts, each
version is decrypted into a directory of its own (`stage`), checked again against the grants
(a revoke between submission and start stops the job), and the directory is removed when the
job stops (`unstage`) or, after a crash, by the next sweep (`sweep`): no plaintext outlives
its job.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fabriek.domain.dataset_names import parse_dataset_ref
from fabriek.domain.datasets import Classification, Residency
from fabriek.domain.errors import InvalidInput, NotFound
from fabriek.domain.residency import JobDataset, ResidencyVerdict, SiteTerms, job_sites
from fabriek.domain.roles import Principal
from fabriek.services.datasets import Vault, open_plaintext
from fabriek.store.tables import (
    DatasetGrantRow,
    DatasetRow,
    DatasetVersionRow,
    ProjectRow,
    SiteRow,
)

log = logging.getLogger(__name__)


class DatasetUnavailable(Exception):
    """A job's dataset can no longer be read by it: deleted, or its grant revoked."""


def resolve(
    session: Session, who: Principal, project_id: int, project: str, refs: Sequence[str]
) -> list[JobDataset]:
    """The dataset versions a job of `project` names, each checked: it exists, the project
    owns it or holds a grant, and it holds data. Errors name the field `datasets`."""
    found: list[JobDataset] = []
    for text in refs:
        ref = parse_dataset_ref(text)
        owner = ref.project or project
        row = session.execute(
            select(DatasetRow, ProjectRow.id)
            .join(ProjectRow, ProjectRow.id == DatasetRow.project_id)
            .where(ProjectRow.name == owner, DatasetRow.name == ref.name)
        ).first()
        readable = row is not None and (
            row[1] == project_id
            or session.get(DatasetGrantRow, (row[0].id, project_id)) is not None
        )
        if row is None or not readable:
            # Whether another project holds a dataset of that name is theirs to know.
            raise NotFound("dataset", f"{owner}/{ref.name} (for project {project})")
        dataset = row[0]
        query = select(DatasetVersionRow).where(DatasetVersionRow.dataset_id == dataset.id)
        if ref.version is not None:
            query = query.where(DatasetVersionRow.number == ref.version)
        else:
            latest = select(func.max(DatasetVersionRow.number)).where(
                DatasetVersionRow.dataset_id == dataset.id
            )
            query = query.where(DatasetVersionRow.number == latest.scalar_subquery())
        version = session.scalars(query).first()
        if version is None:
            which = f"version {ref.version}" if ref.version is not None else "data yet"
            raise InvalidInput.on(
                "datasets", f"dataset {owner}/{ref.name} has no {which}: push it first"
            )
        found.append(
            JobDataset(
                dataset_id=dataset.id,
                project=owner,
                name=dataset.name,
                version=version.number,
                version_id=version.id,
                residency=Residency(dataset.residency),
                personal=Classification(dataset.classification).is_personal,
            )
        )
    return found


def site_terms(session: Session) -> list[SiteTerms]:
    """Every site's jurisdiction and GDPR readiness."""
    return [
        SiteTerms(name, jurisdiction, bool(gdpr))
        for name, jurisdiction, gdpr in session.execute(
            select(SiteRow.name, SiteRow.jurisdiction, SiteRow.gdpr_ready)
        )
    ]


def verdict(datasets: Sequence[JobDataset], sites: Iterable[SiteTerms]) -> ResidencyVerdict:
    """Which sites may run a job reading `datasets`; an InvalidInput when none may."""
    found = job_sites(datasets, sites)
    if not found.allowed:
        raise InvalidInput.on(
            "datasets", f"ResidencyConstraint: no site may run this job: {found.explain()}"
        )
    return found


def from_row(stored: list[dict[str, Any]] | None) -> list[JobDataset]:
    """The datasets stored with a job."""
    return [JobDataset.from_json(d) for d in stored or []]


def sites_for(
    stored: list[dict[str, Any]] | None, sites: Iterable[SiteTerms]
) -> ResidencyVerdict | None:
    """The sites a stored job may use; None when it reads no datasets."""
    datasets = from_row(stored)
    return job_sites(datasets, sites) if datasets else None


# --- staging: plaintext for as long as the job runs ------------------------------------------


def staging_dir(root: Path, job_id: int) -> Path:
    return root / f"job-{job_id}"


def stage(
    session: Session, vault: Vault, root: Path, job_id: int, project_id: int,
    stored: list[dict[str, Any]] | None, hand_over: Callable[[Path], None] | None = None,
) -> Path | None:  # fmt: skip
    """Decrypt a job's datasets into its own directory (mode 0700), after checking again
    that its project may still read each version; the directory, or None without datasets.
    Raises DatasetUnavailable (nothing left on disk) when one can no longer be read.
    `hand_over(directory)` runs on the whole copy before it takes its place (say, to give
    it to the job's account at a Slurm site)."""
    datasets = from_row(stored)
    if not datasets:
        return None
    target = staging_dir(root, job_id)
    partial = root / f".job-{job_id}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial.mkdir(mode=0o700)
    try:
        for ds in datasets:
            version = session.get(DatasetVersionRow, ds.version_id)
            if version is None:
                raise DatasetUnavailable(f"dataset {ds.label} was deleted")
            owner = session.get(DatasetRow, ds.dataset_id)
            if owner is None:
                raise DatasetUnavailable(f"dataset {ds.label} was deleted")
            if (
                owner.project_id != project_id
                and session.get(DatasetGrantRow, (ds.dataset_id, project_id)) is None
            ):
                raise DatasetUnavailable(f"the grant of dataset {ds.label} was revoked")
            path = partial / ds.name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                for chunk in open_plaintext(session, vault, version):
                    out.write(chunk)
        if hand_over is not None:
            hand_over(partial)
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return target


def unstage(root: Path, job_id: int) -> None:
    """Remove a job's decrypted datasets (nothing to do when it had none)."""
    shutil.rmtree(staging_dir(root, job_id), ignore_errors=True)
    shutil.rmtree(root / f".job-{job_id}.partial", ignore_errors=True)


def sweep(root: Path, active: Collection[int]) -> list[int]:
    """Remove the staged datasets of every job not in `active` (left by a crash or a job
    that ended while the control plane was down); the job ids swept."""
    if not root.is_dir():
        return []
    swept: list[int] = []
    for entry in root.iterdir():
        name = entry.name.removeprefix(".").removesuffix(".partial")
        if not name.startswith("job-") or not name[4:].isdigit():
            continue
        job_id = int(name[4:])
        if job_id not in active:
            shutil.rmtree(entry, ignore_errors=True)
            swept.append(job_id)
    if swept:
        log.info("removed staged datasets of %d ended job(s)", len(swept))
    return sorted(set(swept))


def require_sites(datasets: Sequence[JobDataset], session: Session) -> ResidencyVerdict | None:
    """For a submission: the sites its datasets allow (None: no datasets), or a 422."""
    if not datasets:
        return None
    return verdict(datasets, site_terms(session))
