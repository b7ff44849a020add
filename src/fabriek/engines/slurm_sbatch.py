"""An `EngineJob` as an `sbatch` call: its options and the batch script it reads on stdin.

Pure: no I/O. Fabriek's own decisions (resources, time, output files, the tag that finds the
job again after a crash) are command-line options, which sbatch ranks above any `#SBATCH`
line of a user's script, so a pasted script cannot ask for more than Fabriek granted.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePath

from fabriek.domain.containers import ContainerRunError, ContainerRuntime, ContainerSupport
from fabriek.domain.errors import InvalidInput
from fabriek.domain.jobs import JobSpec
from fabriek.domain.sbatch import TaskLayout, task_layout
from fabriek.engines.base import EngineJob, LogStream
from fabriek.engines.slurm_containers import container_lines
from fabriek.engines.slurm_gang import command_lines, node_lines, script_rendezvous
from fabriek.engines.slurm_parse import job_tag
from fabriek.engines.slurm_web import WebPorts, web_port_lines

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+", re.ASCII)


class SbatchInputError(ValueError):
    """The job cannot be written as an sbatch call (say, an invalid variable name)."""


@dataclass(frozen=True)
class WebApp:
    """Where a job's web app records its port: the engine's name and output folder, and
    the site's web ports (see `slurm_web`)."""

    engine: str
    log_dir: PurePath
    ports: WebPorts


@dataclass(frozen=True)
class SbatchRequest:
    """`sbatch` + `args`, with `script` on its standard input."""

    args: tuple[str, ...]
    script: str


def log_file_name(engine: str, handle: str, stream: LogStream) -> str:
    """Where a job's stdout or stderr lands inside the engine's log directory.

    The engine's name is part of it because two clusters number their jobs alike.
    """
    suffix = "out" if stream is LogStream.STDOUT else "err"
    return f"{_UNSAFE.sub('_', engine)}-{handle}.{suffix}"


def time_minutes(seconds: int) -> int:
    """Whole minutes for Slurm, rounded up."""
    # Slurm counts whole minutes; rounding down would kill a job before its granted time.
    return max(1, math.ceil(seconds / 60))


def gpu_request(gpus: int, gpu_type: str | None, nodes: int) -> tuple[str, str]:
    """How to ask Slurm for `gpus` GPUs over `nodes` nodes: ("gres", per node) when they
    split evenly, else ("gpus", the job's total) for Slurm to spread."""
    kind = f"{gpu_type}:" if gpu_type else ""
    if gpus % nodes == 0:
        return "gres", f"gpu:{kind}{gpus // nodes}"  # --gres counts per node
    return "gpus", f"{kind}{gpus}"


def job_name(job: EngineJob, tag_prefix: str) -> str:
    """The Slurm job name, `<prefix>-<job id>-<name>`, for people reading the queue; after
    checking that the job's resources can be asked for at all."""
    spec = job.spec
    if spec.nodes < 1 or spec.cpus < 1 or spec.memory_gb < 1 or spec.gpus < 0:
        raise SbatchInputError("nodes, cpus and memory must be positive, gpus not negative")
    return f"{tag_prefix}-{job.job_id}-{_UNSAFE.sub('_', spec.name)[:64]}"


def _exports(environment: Mapping[str, str]) -> list[str]:
    lines = []
    for name, value in sorted(environment.items()):
        if not _ENV_NAME.fullmatch(name):
            raise SbatchInputError(f"{name!r} is not a valid environment variable name")
        lines.append(f"export {name}={shlex.quote(value)}")
    return lines


def _split_header(script: str) -> tuple[list[str], list[str]]:
    """The shebang, blank and comment lines sbatch reads `#SBATCH` from, each directive
    turned off (`##SBATCH`); and the rest. Fabriek read the directives when the job was
    submitted and gives sbatch what it honours as options: a directive it set aside
    (`--partition`, `--output`, ...) must not reach sbatch, and a directive left on beside
    Fabriek's option of another name (`--gpus-per-node` beside `--gres`) would count twice."""
    lines = script.splitlines()
    if not lines or not lines[0].startswith("#!"):
        lines = ["#!/bin/bash", *lines]  # sbatch refuses a script without one
    cut = 1
    while cut < len(lines) and (not lines[cut].strip() or lines[cut].lstrip().startswith("#")):
        cut += 1
    header = [f"#{line}" if line.startswith("#SBATCH") else line for line in lines[:cut]]
    return header, lines[cut:]


def _image(job: EngineJob, containers: ContainerSupport | None) -> str | None:
    """The image the job runs in, after checking the site can run one."""
    image = job.image.reference if job.image is not None else job.spec.container_image
    if image is not None and containers is None:
        raise SbatchInputError(
            f"the job runs in image {image!r}, but this site runs no containers: "
            "its sites-file table declares no container_runtime"
        )
    return image


def build_script(
    job: EngineJob, containers: ContainerSupport | None = None, web: WebApp | None = None
) -> str:
    """The batch script: the user's script or command, with the job's environment; inside
    its image with the site's container runtime (`containers`) when it names one; for a job
    with a web app, first the port it listens on (`web`: where it is recorded)."""
    spec = job.spec
    exports = _exports(spec.environment)
    if spec.web_port is not None:
        where = web or WebApp("slurm", PurePath("."), WebPorts())
        exports += web_port_lines(where.engine, where.log_dir, where.ports)
    image = _image(job, containers)
    try:
        if spec.script is not None:
            header, body = _split_header(spec.script)
            if image is not None and containers is not None:
                body = container_lines(job, image, containers, body, header[0])
            gang = script_rendezvous(job.job_id, spec)  # several nodes: their meeting point
            return "\n".join([*header, *exports, *gang, *body, ""])
        if not spec.command:
            raise SbatchInputError("a job needs a command or a script")
        if image is not None and containers is not None:
            lines = container_lines(job, image, containers, None)
            if containers.runtime is not ContainerRuntime.PYXIS:
                # Several nodes: the container runs once on each, under srun with its rank
                # (Pyxis's line is an srun of its own, which places its tasks itself).
                lines = node_lines(job.job_id, spec, lines)
            return "\n".join(["#!/bin/bash", f"# Fabriek job {job.job_id}", *exports, *lines, ""])
    except ContainerRunError as error:
        raise SbatchInputError(str(error)) from None
    command = shlex.join(spec.command)
    title = _UNSAFE.sub("_", spec.name)
    return "\n".join(["#!/bin/bash", f"# Fabriek job {job.job_id}: {title}", *exports,
                      *command_lines(job.job_id, spec, command), ""])  # fmt: skip


def _tasks(spec: JobSpec) -> list[str]:
    """The tasks its script asks for (`--ntasks-per-node`, `--ntasks`), and the CPUs of each
    task, so that a node's tasks have together the CPUs Fabriek counted for the node."""
    layout = task_layout_of(spec)
    args = [f"--cpus-per-task={layout.cpus_per_task}"]
    if layout.tasks_per_node is not None:
        args.append(f"--ntasks-per-node={layout.tasks_per_node}")
    if layout.tasks is not None:
        args.append(f"--ntasks={layout.tasks}")
    return args


def task_layout_of(spec: JobSpec) -> TaskLayout:
    """`domain.sbatch.task_layout` of a job, as an `SbatchInputError` where its script no
    longer reads (it was read when the job was submitted)."""
    try:
        return task_layout(spec.script, spec.nodes, spec.cpus)
    except InvalidInput as bad:
        raise SbatchInputError(str(bad)) from None


def build_sbatch(
    job: EngineJob,
    *,
    engine: str,
    log_dir: PurePath,
    tag_prefix: str = "fabriek",
    partition: str | None = None,
    containers: ContainerSupport | None = None,
    gid: int | None = None,
    web_ports: WebPorts | None = None,
) -> SbatchRequest:
    """The sbatch call that starts `job`, tagged so that `known_jobs` finds it again;
    `containers`: how the site runs jobs in images (None: it runs none); `gid`: the owner's
    own group, for sbatch run as root (which otherwise leaves the job in root's group)."""
    spec = job.spec
    args = [
        "--parsable",
        f"--job-name={job_name(job, tag_prefix)}",
        f"--comment={job_tag(tag_prefix, job.job_id)}",
        f"--output={log_dir / log_file_name(engine, '%j', LogStream.STDOUT)}",
        f"--error={log_dir / log_file_name(engine, '%j', LogStream.STDERR)}",
        f"--nodes={spec.nodes}",
        *_tasks(spec),
        f"--mem={spec.memory_gb}G",
        f"--time={time_minutes(spec.time_limit_s)}",
    ]
    if spec.gpus:
        option, value = gpu_request(spec.gpus, spec.gpu_type, spec.nodes)
        args.append(f"--{option}={value}")
    if job.owner is not None:
        # As its owner, charged to its project's Slurm account: never as the control plane
        # (sbatch run as root may name the user; the account must be theirs at the site).
        args += [f"--uid={job.owner.user}", f"--account={job.owner.project}"]
        if gid is not None:
            args.append(f"--gid={gid}")
    if spec.working_dir:
        args.append(f"--chdir={spec.working_dir}")
    if partition:
        args.append(f"--partition={partition}")
    if job.placement.nodes:
        args.append(f"--nodelist={','.join(job.placement.nodes)}")
    web = WebApp(engine, log_dir, web_ports or WebPorts())
    return SbatchRequest(args=tuple(args), script=build_script(job, containers, web))
