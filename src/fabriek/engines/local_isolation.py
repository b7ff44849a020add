"""How the local engine keeps jobs apart: whom each job runs as, and what its jail shows.

A control plane that runs as root runs every job as its owner's own unprivileged user
(`Isolation.USERS`), inside the namespaces `local_jail` builds from `jail_spec`; one that is
not root cannot switch users, so it runs the jobs of one project only
(`Isolation.SINGLE_USER`, claimed by the first project and kept across restarts).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

from fabriek.domain.accounts import IdentityOutOfRange, JobOwner, PosixIdentity, local_identity
from fabriek.engines import local_jail
from fabriek.engines import local_runner as files
from fabriek.engines.base import EngineRejected

WORK_DIR = "work"  # inside a job's directory: the job's own workspace
SINGLE_USER_FILE = "single-user-project.json"
ACCOUNT_FILES = ("passwd", "group")  # the job's view of /etc/passwd and /etc/group
# The job's own PID and mount namespaces; the jail dies with `unshare`, and the job with it.
_UNSHARE = (
    "unshare", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc",
    "--propagation", "private",
)  # fmt: skip


class Isolation(StrEnum):
    """How a local engine keeps jobs apart."""

    # Root: each job as its owner's own user, in namespaces that show it only its own files.
    USERS = "users"
    # Not root: every job as the server's own user, so only one project's jobs may run.
    SINGLE_USER = "single-user"


def default_isolation() -> Isolation:
    """USERS where this process may switch users (root), else SINGLE_USER."""
    return Isolation.USERS if os.geteuid() == 0 else Isolation.SINGLE_USER


def job_identity(
    isolation: Isolation, owner: JobOwner | None, id_base: int, claims: SingleProject
) -> PosixIdentity | None:
    """Whom a job runs as; None: as this process's own user (single-user mode). Raises
    `EngineRejected` for a job that may not run here."""
    if isolation is Isolation.SINGLE_USER:
        if owner is not None:
            claims.claim(owner)
        return None
    if owner is None:
        raise EngineRejected(
            "the job names no owner, and this local engine runs every job as its own user"
        )
    if shutil.which("unshare") is None:
        raise EngineRejected(
            "util-linux's unshare is not installed on this machine: without it no job "
            "can be kept from the others' files; install util-linux"
        )
    try:
        return local_identity(owner, id_base)
    except IdentityOutOfRange as error:
        raise EngineRejected(str(error)) from None


class SingleProject:
    """The one project a single-user engine runs, claimed by the first to run there."""

    def __init__(self, engine: str, state_dir: Path) -> None:
        self.engine = engine
        self.path = state_dir / SINGLE_USER_FILE

    def claim(self, owner: JobOwner) -> None:
        """Claim the engine for `owner`'s project, or refuse: it is another project's."""
        files.write_json_once(self.path, {"project_id": owner.project_id, "project": owner.project})
        claimed = files.read_json(self.path) or {}
        if claimed.get("project_id") != owner.project_id:
            raise EngineRejected(
                f"the local engine {self.engine} runs in single-user mode (the server is not "
                "root, so a job would run as the server's own user and could read the jobs "
                f"of others): it runs the jobs of project {claimed.get('project')!r} only; "
                "run the server as root to run the jobs of several projects"
            )


def jail_spec(
    job_dir: Path, who: PosixIdentity, datasets_dir: Path | None, private: Sequence[Path]
) -> dict[str, Any]:
    """What `local_jail` needs: how to start it, whom to become, what to hide and show."""
    work = str(job_dir / WORK_DIR)
    binds: list[dict[str, Any]] = [{"source": work, "target": work, "writable": True}]
    if datasets_dir is not None:
        staged = str(Path(datasets_dir).resolve())
        binds.append({"source": staged, "target": staged, "writable": False})
    for name in ACCOUNT_FILES:
        if Path("/etc", name).is_file():  # `write_account_files` wrote our copy
            binds.append({"source": str(job_dir / name), "target": f"/etc/{name}"})
    jail = [sys.executable, "-I", "-S", local_jail.__file__, str(job_dir)]
    return {
        "command": [*_UNSHARE, *jail],
        "uid": who.uid,
        "gid": who.gid,
        "user": who.user,
        "hide": [str(path) for path in private],
        "binds": binds,
    }


def write_account_files(job_dir: Path, who: PosixIdentity, home: Path) -> None:
    """The machine's /etc/passwd and /etc/group with the job's user and group added, so that
    `id`, `whoami` and `~` work inside the job (a name the machine has already is left to
    the machine)."""
    lines = {
        "passwd": f"{who.user}:x:{who.uid}:{who.gid}:{who.user}:{home}:/bin/bash",
        "group": f"{who.group}:x:{who.gid}:{who.user}",
    }
    for name, line in lines.items():
        try:
            known = Path("/etc", name).read_text()
        except OSError:
            continue
        taken = {entry.split(":", 1)[0] for entry in known.splitlines()}
        added = "" if line.split(":", 1)[0] in taken else line + "\n"
        (job_dir / name).write_text(known.rstrip("\n") + "\n" + added)
        (job_dir / name).chmod(0o644)


def give(root: Path, who: PosixIdentity, *, writable: bool = True) -> None:
    """Make `root` and everything in it the job user's (read-only unless `writable`)."""
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        os.chown(path, who.uid, who.gid)
        if not writable:
            path.chmod(0o500 if path.is_dir() else 0o400)
