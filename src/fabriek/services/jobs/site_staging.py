"""Datasets delivered to a Slurm site's jobs: decrypted into the staging folder the site
declares on its shared file system, handed to the job's own account there, and removed when
the job ends (or swept, after a crash), like the `local` engine's copies.

The control plane writes the copy where it mounts that file system (`dataset_staging_local`,
or the same path as the nodes'), and hands it over with chown: it runs as root there, as it
does to start jobs as their owners (`sbatch --uid`). The owner's account is looked up by
name on this machine, which shares the site's accounts as one of its cluster's clients.
The layout and the modes are `fabriek.domain.dataset_staging`'s.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Collection
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from fabriek.domain.accounts import JobOwner
from fabriek.domain.dataset_staging import FOLDER_MODE, SiteStaging, staged_mode
from fabriek.services.datasets import Vault
from fabriek.services.jobs import datasets as job_datasets


class StagingFailed(Exception):
    """A job's datasets cannot be put at its site now (the folder is not mounted here, its
    owner has no account here): it waits, with the reason, and is tried again."""


def account_ids(user: str) -> tuple[int, int]:
    """The UID and primary GID of the job's account at the site, as this machine knows it."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise StagingFailed(
            f"the account {user!r} is unknown on the control plane's machine, which hands "
            "it its datasets at the site"
        ) from None
    return entry.pw_uid, entry.pw_gid


def stage(
    session: Session,
    vault: Vault,
    staging: SiteStaging,
    job_id: int,
    project_id: int,
    stored: list[dict[str, Any]] | None,
    owner: JobOwner | None,
) -> Path | None:
    """Decrypt a job's datasets into the site's staging folder, readable by the job's own
    account alone; the folder as the job sees it ($FABRIEK_DATASETS), or None without
    datasets. Raises DatasetUnavailable when one can no longer be read, StagingFailed when
    the copy cannot be made or handed over now."""
    if not job_datasets.from_row(stored):
        return None
    if owner is None:
        raise StagingFailed("a job without an owner cannot be handed datasets at a Slurm site")
    uid, gid = account_ids(owner.user)
    if os.geteuid() not in (0, uid):
        raise StagingFailed(
            f"handing datasets to {owner.user} at {staging.site} needs a control plane that "
            "runs as root (as it does to start jobs as their owners)"
        )
    folder = _installation_folder(staging)
    job_datasets.stage(
        session, vault, folder, job_id, project_id, stored,
        hand_over=lambda copy: hand_over(copy, uid, gid),
    )  # fmt: skip
    return Path(staging.job_path(job_id))


def hand_over(copy: Path, uid: int, gid: int) -> None:
    """Make a staged copy its job's account's, read-only (files, then folders, so that no
    folder closes before what is in it is done)."""
    entries = sorted(copy.rglob("*"), key=lambda p: len(p.parts), reverse=True)
    for path in [*entries, copy]:
        if path.is_symlink():  # none are written; never follow one out of the copy
            continue
        os.chown(path, uid, gid)
        path.chmod(staged_mode(path.is_dir()))


def unstage(staging: SiteStaging, job_id: int) -> None:
    """Remove a job's copy at the site (nothing to do when it has none)."""
    job_datasets.unstage(Path(staging.folder), job_id)


def sweep(staging: SiteStaging, active: Collection[int]) -> list[int]:
    """Remove the copies at the site of every job of this installation not in `active`."""
    return job_datasets.sweep(Path(staging.folder), active)


def _installation_folder(staging: SiteStaging) -> Path:
    """This installation's folder in the site's staging folder, made when missing: job
    users may pass through it, none may list it. The staging folder itself is the
    operator's (made on the shared file system): where it is missing here, that file
    system is not mounted, and a copy written anyway would never reach the nodes."""
    root = Path(staging.local_root)
    if not root.is_dir():
        raise StagingFailed(
            f"{staging.site}'s dataset staging folder {root} is not there on the control "
            "plane's machine: is the site's shared file system mounted?"
        )
    folder = Path(staging.folder)
    folder.mkdir(mode=FOLDER_MODE, exist_ok=True)
    if folder.stat().st_mode & 0o777 != FOLDER_MODE:
        folder.chmod(FOLDER_MODE)  # the umask, or an older copy, may have closed it
    return folder
