"""A real JupyterLab for the notebook tests: pip-installed once into a virtual environment
of its own in the test cache, and kept between runs.

Jobs run as unprivileged users inside the local engine's jail, which hides the state folder
and gives each job an empty /tmp: the environment is therefore made with the system's
Python (not one under root's home) in a world-readable folder of the checkout, outside
both; where the checkout lies on a file system mounted `noexec`, or one other users cannot
enter (a CI runner's work folder may be either), it goes to the machine's /var/cache. Plain Python, no pytest: `ensure_jupyter` returns the `jupyter` program, or raises
`Unavailable` with a loud reason, for `pytest.skip`.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

from tests.setup_lock import machine_setup

# JupyterLab's version, pinned: a test run must not change because a registry moved on.
JUPYTERLAB_VERSION = "4.6.6"
CHECKOUT_CACHE = Path(__file__).resolve().parents[1] / ".fabriek" / "test-cache"
MACHINE_CACHE = Path("/var/cache/fabriek-tests")
SYSTEM_PYTHON = ("/usr/bin/python3", "/usr/local/bin/python3")


class Unavailable(Exception):
    """JupyterLab cannot be had on this machine; the message says why."""


def _jobs_may_run_from(folder: Path) -> bool:
    """Whether a job's user could run a program kept under `folder`: its file system not
    mounted noexec, and every folder above it searchable by all."""
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if os.statvfs(existing).f_flag & os.ST_NOEXEC:
        return False
    return all(p.stat().st_mode & stat.S_IXOTH for p in (existing, *existing.parents))


def cache_dir() -> Path:
    """The test cache the jobs' users can run programs from: the checkout's, else the
    machine's."""
    if _jobs_may_run_from(CHECKOUT_CACHE.parents[1]):  # the checkout (we open the rest)
        return CHECKOUT_CACHE
    if _jobs_may_run_from(MACHINE_CACHE.parent):
        return MACHINE_CACHE
    raise Unavailable(
        f"neither {CHECKOUT_CACHE.parents[1]} nor {MACHINE_CACHE.parent} lets another user run a "
        "program (mounted noexec, or not searchable by all): no job's user could run JupyterLab"
    )


def venv_dir() -> Path:
    """Where the pinned JupyterLab's environment lives."""
    return cache_dir() / f"jupyterlab-{JUPYTERLAB_VERSION}"


def ensure_jupyter() -> Path:
    """The `jupyter` program of the pinned JupyterLab, installed on first use."""
    program = venv_dir() / "bin" / "jupyter"
    if (venv_dir() / ".installed").exists():
        return program
    with machine_setup():
        if not (venv_dir() / ".installed").exists():
            _install(venv_dir())
    return program


def _system_python() -> str:
    for candidate in SYSTEM_PYTHON:
        if os.access(candidate, os.X_OK):
            return candidate
    raise Unavailable("no system Python (/usr/bin/python3) that every job's user may run")


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1200)
    if done.returncode != 0:
        raise Unavailable(f"{what} failed: {(done.stderr or done.stdout)[-800:]}")


def _install(where: Path) -> None:
    shutil.rmtree(where, ignore_errors=True)
    where.parent.mkdir(parents=True, exist_ok=True)
    old_umask = os.umask(0o022)  # readable and runnable by the jobs' users
    try:
        _run([_system_python(), "-m", "venv", str(where)], "making JupyterLab's venv")
        _run(
            [str(where / "bin" / "python"), "-m", "pip", "install", "--quiet",
             "--no-input", f"jupyterlab=={JUPYTERLAB_VERSION}"],
            f"`pip install jupyterlab=={JUPYTERLAB_VERSION}` (is the package index reachable?)",
        )  # fmt: skip
    finally:
        os.umask(old_umask)
    _open_to_all(where)
    (where / ".installed").write_text(JUPYTERLAB_VERSION + "\n")


def _open_to_all(where: Path) -> None:
    """Every folder of the environment and of the cache searchable, every file readable."""
    cache = where.parent
    for folder in (cache.parent, cache, where):
        if folder.is_dir():
            os.chmod(folder, folder.stat().st_mode | 0o055)
    for root, dirs, names in os.walk(where):
        for name in dirs + names:
            path = Path(root) / name
            if path.is_symlink():
                continue
            mode = path.stat().st_mode
            extra = stat.S_IROTH | stat.S_IRGRP
            if path.is_dir() or mode & stat.S_IXUSR:
                extra |= stat.S_IXOTH | stat.S_IXGRP
            os.chmod(path, mode | extra)


if __name__ == "__main__":
    print(ensure_jupyter())
