"""Where a job's datasets are put for it at a site, and who may read them there.

Pure: no I/O. A job's datasets are decrypted ("staged") when it starts and removed when it
stops. On a `local` site that happens on the control plane's machine, where the job runs. A
Slurm site's jobs run on its compute nodes, so the site declares in the sites file a folder
on its shared file system that the nodes and the control plane both see
(`dataset_staging`, and `dataset_staging_local` where the control plane mounts it at another
path). Each installation keeps its jobs' copies in a folder of its own there (its tag, so
two control planes sharing a site never sweep each other's), each job in one folder:

    <dataset_staging>/<installation tag>/job-<id>/<dataset name>

The installation's folder lets every job user pass through but list nothing (0711); a job's
folder and files belong to the job's own account at the site and are read-only to it
(0500 and 0400): another person's job cannot enter it, whatever path it guesses.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from fabriek.domain.capacity import SiteShape, require_fit_among
from fabriek.domain.errors import InvalidInput
from fabriek.domain.jobs import JobSpec
from fabriek.domain.residency import ResidencyVerdict

# Why a site the data would allow takes no job that reads it.
NOT_STAGED = "hands jobs no datasets (no dataset_staging in the sites file)"
# The installation's folder: every job user may pass through it, none may list it.
FOLDER_MODE = 0o711
# A job's copy: its own account's, read-only.
STAGED_DIR_MODE = 0o500
STAGED_FILE_MODE = 0o400
_INSTALLATION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)


class StagingConfigError(ValueError):
    """A site's staging folder cannot be used as written (say, a relative path)."""


def staging_path(text: str, key: str = "dataset_staging") -> PurePosixPath:
    """A staging folder as the sites file writes it: absolute, without `..` or `.`."""
    path = PurePosixPath(text)
    if not path.is_absolute():
        raise StagingConfigError(f"{key} must be an absolute path, not {text!r}")
    if ".." in path.parts:
        raise StagingConfigError(f"{key} must be a plain absolute path, not {text!r}")
    if path == PurePosixPath("/"):
        raise StagingConfigError(f"{key} must be a folder of its own, not the root")
    return path


def job_folder_name(job_id: int) -> str:
    """The name of a job's staged copy within its installation's folder."""
    return f"job-{job_id}"


@dataclass(frozen=True)
class SiteStaging:
    """A site's staging folder, as its nodes see it (`root`) and as the control plane does
    (`local_root`: the same path unless the control plane mounts the file system elsewhere),
    and the tag of the installation whose jobs' copies are kept there."""

    site: str
    root: PurePosixPath
    local_root: PurePosixPath
    installation: str

    def __post_init__(self) -> None:
        if not _INSTALLATION.fullmatch(self.installation):
            raise StagingConfigError(f"{self.installation!r} is not an installation tag")

    @property
    def folder(self) -> PurePosixPath:
        """The installation's folder, as the control plane sees it."""
        return self.local_root / self.installation

    def local_job_path(self, job_id: int) -> PurePosixPath:
        """A job's copy, as the control plane sees it (where it is written)."""
        return self.folder / job_folder_name(job_id)

    def job_path(self, job_id: int) -> PurePosixPath:
        """A job's copy, as the job sees it on the site's nodes ($FABRIEK_DATASETS)."""
        return self.root / self.installation / job_folder_name(job_id)


def site_staging(
    site: str, root: str, installation: str, local_root: str | None = None
) -> SiteStaging:
    """A site's staging as its sites-file table declares it (`StagingConfigError` when a
    path cannot be used)."""
    nodes = staging_path(root)
    here = staging_path(local_root, "dataset_staging_local") if local_root else nodes
    return SiteStaging(site, nodes, here, installation)


def staged_mode(is_dir: bool) -> int:
    """The mode of one entry of a job's staged copy: read-only to its owner, nothing to
    anyone else."""
    return STAGED_DIR_MODE if is_dir else STAGED_FILE_MODE


def dataset_sites(spec: JobSpec, shapes: Sequence[SiteShape]) -> list[SiteShape]:
    """The sites that can hand a job its datasets (of those its datasets allow, `shapes`):
    a `local` site stages them itself, a Slurm site only into the folder its sites-file
    table declares. Raises `InvalidInput` on `datasets` when none can, so that a job is
    refused before it is queued and never runs without its data."""
    staging = [s for s in shapes if s.stages_datasets]
    if not staging:
        names = ", ".join(s.name for s in shapes) or "no site"
        raise InvalidInput.on(
            "datasets",
            f"no site can hand this job its datasets: {names} may hold the data, but none "
            "declares where its jobs' datasets are staged (dataset_staging in the sites "
            "file); ask the factory's operators, or run the job without datasets",
        )
    require_fit_among(spec, staging, "can hand it its datasets")
    return staging


def without_unstaged(verdict: ResidencyVerdict, unstaged: frozenset[str]) -> ResidencyVerdict:
    """A job's residency verdict with the sites that cannot stage datasets taken out of
    what it allows, each with the reason, so that a waiting job's reason names them."""
    dropped = verdict.allowed & unstaged
    if not dropped:
        return verdict
    excluded = {**verdict.excluded, **dict.fromkeys(dropped, NOT_STAGED)}
    return ResidencyVerdict(verdict.allowed - dropped, excluded)
