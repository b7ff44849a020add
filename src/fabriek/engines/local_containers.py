"""How the local engine runs a job inside a container image, with podman.

A container job is started by its runner (root) as `podman run`, not through the jail:
podman needs root to set up the container, and the container is itself the job's jail. Its
own mount, PID and user-visible namespaces, `--user UID:GID` (the person's own IDs, never
root), no capabilities and no way to gain privileges, and mounts of only the job's
workspace (read-write) and its staged datasets (read-only) keep it from the state folder,
the keys and other jobs' files: the image's root file system is all else it sees.

Podman in the foreground may leave its container running under conmon when the client is
killed (cancel, time limit): the runner runs `podman rm -f -t 0 NAME` after every job,
which stops and removes whatever is left. A pull credential goes into an auth file in the
job's private directory (root's, 0700), never on a command line, and is removed then too.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fabriek.domain.accounts import PosixIdentity
from fabriek.domain.containers import (
    ContainerRun,
    ContainerRunError,
    ContainerRuntime,
    ContainerSupport,
    Mount,
    auth_file_text,
    gpu_environment,
    podman_argv,
)
from fabriek.engines import local_runner as files
from fabriek.engines.base import EngineJob, EngineRejected
from fabriek.engines.local_isolation import WORK_DIR

AUTH_FILE = "registry-auth.json"  # in the job's directory: the job's pull credential
CLEANED_FILE = "cleaned"  # in the job's directory: what its runner left was removed
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The host's values of these mean nothing inside an image (its own PATH and shell).
_HOST_ONLY = ("PATH", "SHELL")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+", re.ASCII)


def image_of(job: EngineJob) -> str | None:
    """The image a job runs in: the reference the control plane resolved, else the name as
    the job gave it (an image in this machine's own store), else None."""
    return job.image.reference if job.image is not None else job.spec.container_image


def check_container(
    engine: str, support: ContainerSupport | None, image: str, nodes: int = 1
) -> None:
    """Refuse, for good, a container this engine cannot run."""
    if nodes != 1:
        raise EngineRejected(
            f"the local engine runs a job in an image on one node, not {nodes}: "
            "run it on a Slurm site, or without an image"
        )
    if support is None:
        raise EngineRejected(
            f"the job runs in image {image!r}, but site {engine} runs no containers: "
            "its sites-file table declares no container_runtime"
        )
    if support.runtime is not ContainerRuntime.PODMAN:
        raise EngineRejected(
            f"the local engine of site {engine} runs containers with podman, "
            f'not {support.runtime}: set container_runtime = "podman" in the sites file'
        )
    if shutil.which("podman") is None:
        raise EngineRejected(
            f"the job runs in image {image!r}, but podman is not installed on this machine"
        )


def container_name(state_dir: Path, engine: str, job_id: int) -> str:
    """The container's name: unique per engine and state folder, so that two control planes
    on one machine never remove each other's containers."""
    where = hashlib.sha256(str(state_dir).encode()).hexdigest()[:8]
    return f"fabriek-{_UNSAFE.sub('_', engine)[:40]}-{where}-{job_id}"


def container_launch(
    job: EngineJob,
    building: Path,
    job_dir: Path,
    gpus: tuple[int, ...],
    who: PosixIdentity | None,
    support: ContainerSupport,
    name: str,
    environment: Mapping[str, str],
) -> dict[str, Any]:
    """What `job.json` says of a container job: the podman command the runner starts (as
    root, from the job's directory, with nothing of the control plane's environment: the
    job's own, `env`, is handed to the container on podman's command line), and
    the commands it runs after the job ended. Writes the pull credential's auth file into
    `building`, the job's directory before it is renamed to `job_dir`."""
    image = image_of(job)
    if image is None:
        raise EngineRejected("the job names no image")
    spec = job.spec
    work = job_dir / WORK_DIR
    if spec.script is not None:
        script = work / "script.sh"
        (building / WORK_DIR / "script.sh").chmod(0o755)
        # Its own interpreter line decides (an image may have no bash); else the POSIX shell.
        argv = [str(script)] if spec.script.startswith("#!") else ["/bin/sh", str(script)]
    else:
        argv = list(spec.command or ())
    mounts = [Mount(str(work), str(work), writable=True)]
    if job.datasets_dir is not None:
        staged = str(Path(job.datasets_dir).resolve())
        mounts.append(Mount(staged, staged))
    env: dict[str, str | None] = {k: v for k, v in environment.items() if k not in _HOST_ONLY}
    env.update(gpu_environment(gpus, support.cdi))
    auth = _write_auth(job, building, job_dir)
    podman = ["podman", *support.global_options]
    after = [[*podman, "rm", "--force", "--time", "0", "--ignore", name]]
    if auth is not None:
        after.append(["rm", "-f", str(auth)])
    try:
        run = ContainerRun(
            reference=image,
            argv=tuple(argv),
            workdir=spec.working_dir or str(work),
            uid=who.uid if who is not None else None,
            gid=who.gid if who is not None else None,
            mounts=tuple(mounts),
            environment=env,
            gpus=gpus,
            cdi=support.cdi,
            name=name,
            auth_file=str(auth) if auth is not None else None,
            global_options=support.global_options,
            run_options=support.run_options,
        )
    except ContainerRunError as error:
        raise EngineRejected(str(error)) from None
    # Podman as root needs only the system's programs; rootless podman (a server that is not
    # root) finds its storage from HOME and XDG_RUNTIME_DIR.
    runner_env = {"PATH": _SYSTEM_PATH}
    runner_env.update(dict(support.environment))
    if who is None:
        runner_env.update(
            {k: os.environ[k] for k in ("HOME", "XDG_RUNTIME_DIR") if k in os.environ}
        )
    return {"argv": podman_argv(run), "launcher_env": runner_env, "cwd": str(job_dir),
            "jail": None,
            "after": after, "container": {"name": name, "image": image}}  # fmt: skip


def _write_auth(job: EngineJob, building: Path, job_dir: Path) -> Path | None:
    """The job's pull credential in an auth file only root may read (its path once the
    job's directory is in place), or None without one."""
    image = job.image
    if image is None or image.username is None or image.password is None:
        return None
    descriptor = os.open(building / AUTH_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(auth_file_text(image.reference, image.username, image.password))
    return job_dir / AUTH_FILE


def left_behind(job_dir: Path) -> None:
    """Remove what a job whose runner died (killed outright, the machine's OOM killer) could
    not: its container, which would run on and keep its GPUs, and its pull credential. Once
    per job; a job without a container has nothing to remove."""
    meta = files.read_json(job_dir / files.JOB_FILE) or {}
    commands = meta.get("after")
    if not commands or (job_dir / CLEANED_FILE).exists():
        return
    for argv in commands:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=120,
                env={"PATH": _SYSTEM_PATH}, check=False,
            )  # fmt: skip
    (job_dir / CLEANED_FILE).touch()
