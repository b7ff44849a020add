"""A job's container run, written as the command line of the runtime its site declares.

Pure: no I/O. A site names its container runtime in the sites file (`container_runtime`);
this module turns one run (image, user, working directory, mounts, environment, GPUs) into
the exact argv each runtime gets, so that what users read in docs/workloads.md is what runs:

- podman as root (the `local` engine): `podman [site global options] run --rm --name NAME
  --user UID:GID --security-opt no-new-privileges --cap-drop all --network host --init
  -v SRC:DST[:ro] ... -w DIR --env NAME=VALUE ... [--device nvidia.com/gpu=N ...]
  [--authfile FILE] [site run options] IMAGE ARGV...`
- podman rootless, started by the job's own user (Slurm sites): the same, but `--userns
  keep-id` instead of `--user`, and `--env NAME` passes a variable through from the job.
- Apptainer: `apptainer exec --no-home [--nv] --bind SRC:DST[:ro] ... --pwd DIR
  --env NAME=VALUE ... [site run options] docker://IMAGE ARGV...`
- Pyxis (Enroot under Slurm): `srun --ntasks=1 --container-image=IMAGE
  --container-mounts=SRC:DST[:ro],... --container-workdir=DIR [site run options] ARGV...`

Podman, Apptainer and Enroot all run the job as the user who started it or as the UID given;
nothing here ever asks for UID 0 inside the container.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from fabriek.domain.capacity import SiteShape, require_fit_among
from fabriek.domain.errors import InvalidInput
from fabriek.domain.jobs import JobSpec

# Shell variables a Slurm batch script fills in at run time in the words Fabriek and the
# site wrote (the job's working directory and body file, the user, the Slurm job); every
# other character is quoted, and the job's own command is quoted whole.
SCRIPT_VARIABLES = (
    "FABRIEK_WORK_DIR", "FABRIEK_BODY", "FABRIEK_AUTH", "FABRIEK_DATASETS", "USER", "SLURM_JOB_ID"
)  # fmt: skip
_VARIABLE = re.compile(r"\$\{(" + "|".join(SCRIPT_VARIABLES) + r")\}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_DOCKER_HUB = "docker.io"


class ContainerRuntime(StrEnum):
    """The container runtimes a site may declare."""

    PODMAN = "podman"
    APPTAINER = "apptainer"
    PYXIS = "pyxis"


@dataclass(frozen=True)
class ContainerSupport:
    """What a site declares in the sites file: its runtime, whether its GPUs are handed to
    containers as NVIDIA CDI devices, the options its machines need (global: before `run`;
    run: before the image), and the environment the runtime itself runs with (say HOME or
    XDG_RUNTIME_DIR for rootless podman; not the container's)."""

    runtime: ContainerRuntime
    cdi: bool = False
    global_options: tuple[str, ...] = ()
    run_options: tuple[str, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()


class ContainerRunError(ValueError):
    """A container run that no runtime may be asked for (root inside, a bad name)."""


@dataclass(frozen=True)
class Mount:
    """A host path shown inside the container, at `target`, read-only unless `writable`."""

    source: str
    target: str
    writable: bool = False


@dataclass(frozen=True)
class ContainerRun:
    """One job's run inside an image.

    `uid`/`gid` None: the runtime keeps the caller's own IDs (a Slurm job started as its
    user); else the IDs to run as (the local engine, which starts podman as root).
    `environment`: a value of None passes the caller's variable through by name.
    `gpus`: the host's GPU indices the job holds; with `cdi` they are handed to the
    container as NVIDIA CDI devices. `name` is the container's name (podman), so that it
    can be removed by name. `global_options`/`run_options` are the site's own, from the
    sites file, placed before `run` and before the image."""

    reference: str
    argv: tuple[str, ...]
    workdir: str
    uid: int | None = None
    gid: int | None = None
    mounts: tuple[Mount, ...] = ()
    environment: Mapping[str, str | None] = field(default_factory=dict)
    gpus: tuple[int, ...] = ()
    cdi: bool = False
    name: str | None = None
    auth_file: str | None = None
    global_options: tuple[str, ...] = ()
    run_options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.reference or self.reference.startswith("-"):
            raise ContainerRunError(f"not an image reference: {self.reference!r}")
        if not self.argv:
            raise ContainerRunError("a container run needs a command")
        if self.uid == 0 or self.gid == 0:
            raise ContainerRunError("a job never runs as root inside its container")
        if (self.uid is None) != (self.gid is None):
            raise ContainerRunError("give both a UID and a GID, or neither")
        for name in self.environment:
            if not _ENV_NAME.fullmatch(name):
                raise ContainerRunError(f"{name!r} is not a valid environment variable name")
        for mount in self.mounts:
            for path in (mount.source, mount.target):
                if not path or "," in path or ":" in path:
                    raise ContainerRunError(f"a mount path may hold no ',' or ':': {path!r}")


def gpu_environment(gpus: Sequence[int], cdi: bool) -> dict[str, str]:
    """CUDA_VISIBLE_DEVICES inside the container: with CDI the container sees only its own
    GPUs, numbered from 0; without it, the host's indices of the GPUs the job holds."""
    shown = range(len(gpus)) if cdi else gpus
    return {"CUDA_VISIBLE_DEVICES": ",".join(str(g) for g in shown)}


def _mount_text(mount: Mount, read_only: str = "ro") -> str:
    text = f"{mount.source}:{mount.target}"
    return text if mount.writable else f"{text}:{read_only}"


def podman_argv(run: ContainerRun) -> list[str]:
    """`podman run` for `run`: as its UID:GID when given (podman started as root), else as
    the calling user mapped to itself (`--userns keep-id`, rootless podman)."""
    who = ["--user", f"{run.uid}:{run.gid}"] if run.uid is not None else ["--userns", "keep-id"]
    argv = ["podman", *run.global_options, "run", "--rm"]
    if run.name:
        argv += ["--name", run.name]
    argv += [*who, "--security-opt", "no-new-privileges", "--cap-drop", "all"]
    argv += ["--network", "host", "--init"]
    for mount in run.mounts:
        argv += ["-v", _mount_text(mount)]
    argv += ["-w", run.workdir]
    for name, value in sorted(run.environment.items()):
        argv += ["--env", name if value is None else f"{name}={value}"]
    if run.cdi:
        for gpu in run.gpus:
            argv += ["--device", f"nvidia.com/gpu={gpu}"]
    if run.auth_file:
        argv += ["--authfile", run.auth_file]
    return [*argv, *run.run_options, run.reference, *run.argv]


def apptainer_argv(run: ContainerRun) -> list[str]:
    """`apptainer exec` for `run`: it always runs as the calling user; `--nv` where the job
    holds GPUs (Apptainer reads CUDA_VISIBLE_DEVICES itself)."""
    if run.uid is not None:
        raise ContainerRunError("Apptainer runs as the calling user: start it as the job's user")
    argv = ["apptainer", *run.global_options, "exec", "--no-home"]
    if run.gpus:
        argv.append("--nv")
    for mount in run.mounts:
        argv += ["--bind", _mount_text(mount)]
    argv += ["--pwd", run.workdir]
    for name, value in sorted(run.environment.items()):
        if value is not None:  # the caller's own variables pass through by themselves
            argv += ["--env", f"{name}={value}"]
    return [*argv, *run.run_options, _apptainer_image(run.reference), *run.argv]


def _apptainer_image(reference: str) -> str:
    """A registry reference as Apptainer reads it; a local file or URI is left alone."""
    if reference.startswith(("/", "./", "docker://", "oras://", "library://", "docker-daemon:")):
        return reference
    return f"docker://{reference}"


def pyxis_argv(run: ContainerRun) -> list[str]:
    """`srun` with Pyxis's options for `run`: Enroot runs the image as the calling user,
    with the calling shell's environment."""
    if run.uid is not None:
        raise ContainerRunError("Pyxis runs as the calling user: start it as the job's user")
    argv = ["srun", *run.global_options, "--ntasks=1", f"--container-image={run.reference}"]
    if run.mounts:
        argv.append("--container-mounts=" + ",".join(_mount_text(m) for m in run.mounts))
    # The environment is the batch script's own (it exports the job's variables): srun
    # hands it on, and an --export list could not hold a value with a comma.
    argv.append(f"--container-workdir={run.workdir}")
    return [*argv, *run.run_options, *run.argv]


def container_argv(runtime: ContainerRuntime, run: ContainerRun) -> list[str]:
    """The command line `runtime` is started with for `run`."""
    builders = {
        ContainerRuntime.PODMAN: podman_argv,
        ContainerRuntime.APPTAINER: apptainer_argv,
        ContainerRuntime.PYXIS: pyxis_argv,
    }
    return builders[runtime](run)


def script_line(
    argv: Sequence[str], environment: Sequence[tuple[str, str]] = (), literal: int = 0
) -> str:
    """`argv` as one line of a shell script, run with `environment` added to its own: every
    word quoted, except the references to the script's own variables (`${USER}`,
    `${FABRIEK_WORK_DIR}`, ...), which the shell fills in; the last `literal` words (the
    job's own command) are quoted whole, so that they reach the container as written."""
    for name, _ in environment:
        if not _ENV_NAME.fullmatch(name):
            raise ContainerRunError(f"{name!r} is not a valid environment variable name")
    assignments = [f"{name}={_script_word(value)}" for name, value in environment]
    cut = len(argv) - literal
    words = [*(_script_word(w) for w in argv[:cut]), *(shlex.quote(w) for w in argv[cut:])]
    return " ".join([*assignments, *words])


def _script_word(word: str) -> str:
    parts: list[str] = []
    last = 0
    for found in _VARIABLE.finditer(word):
        if found.start() > last:
            parts.append(shlex.quote(word[last : found.start()]))
        parts.append(f'"${{{found.group(1)}}}"')
        last = found.end()
    if last < len(word) or not parts:
        parts.append(shlex.quote(word[last:]))
    return "".join(parts)


def registry_host(reference: str) -> str:
    """The registry an image reference names (Docker's rule: a first component with a dot,
    a colon or `localhost` is a host), else Docker Hub's."""
    first, slash, _ = reference.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return _DOCKER_HUB


def auth_file_text(reference: str, username: str, password: str) -> str:
    """A containers-auth.json(5) file holding one pull credential for `reference`'s
    registry (podman's `--authfile`, Apptainer's and Enroot's credentials are written from
    the same values)."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps({"auths": {registry_host(reference): {"auth": token}}})


def image_sites(spec: JobSpec, shapes: Sequence[SiteShape]) -> list[SiteShape]:
    """The sites that can run a job in a container image: those whose sites-file table
    declares a container runtime, and that can hold the job. Raises `InvalidInput` naming
    what is missing when there is none, so that the job is refused before it is queued."""
    running = [s for s in shapes if s.containers]
    if not running:
        raise InvalidInput.on(
            "container_image",
            f"no site can run the image {spec.container_image!r}: none of them declares a "
            "container runtime (container_runtime in the sites file); ask the factory's "
            "operators for one, or run the job without an image",
        )
    require_fit_among(spec, running, "can run images")
    return running
