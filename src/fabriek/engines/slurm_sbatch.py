"""An `EngineJob` as an `sbatch` call: its options and the batch script it reads on stdin.

Pure: no I/O. Fabriek's own decisions (resources, time, output files, the tag that finds the
job again after a crash) are command-line options, which sbatch ranks above any `#SBATCH`
line of a user's script, so a pasted script cannot ask for more than Fabriek granted.
"""

from __future__ import annotations

import hashlib
import math
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePath

from fabriek.engines.base import EngineJob, LogStream
from fabriek.engines.slurm_parse import job_tag

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+", re.ASCII)


class SbatchInputError(ValueError):
    """The job cannot be written as an sbatch call (say, an invalid variable name)."""


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
    """The shebang, blank and comment lines sbatch reads `#SBATCH` from; and the rest."""
    lines = script.splitlines()
    if not lines or not lines[0].startswith("#!"):
        lines = ["#!/bin/bash", *lines]  # sbatch refuses a script without one
    cut = 1
    while cut < len(lines) and (not lines[cut].strip() or lines[cut].lstrip().startswith("#")):
        cut += 1
    return lines[:cut], lines[cut:]


def _in_container(image: str, gpus: int, body: list[str]) -> list[str]:
    """Run `body` (shell lines) inside `image` with Apptainer, from a temporary file."""
    text = "\n".join(body)
    # A delimiter made from the text itself cannot occur in it (short of a hash collision).
    end = "FABRIEK_EOF_" + hashlib.sha256(text.encode()).hexdigest()[:16]
    nv = " --nv" if gpus else ""
    return [
        'fabriek_body="$(mktemp)"',
        "trap 'rm -f \"$fabriek_body\"' EXIT",
        f"cat > \"$fabriek_body\" <<'{end}'",
        text,
        end,
        f'apptainer exec{nv} {shlex.quote(image)} /bin/bash "$fabriek_body"',
    ]


def build_script(job: EngineJob) -> str:
    """The batch script: the user's script or command, with the job's environment."""
    spec = job.spec
    exports = _exports(spec.environment)
    if spec.script is not None:
        header, body = _split_header(spec.script)
        if spec.container_image:
            body = _in_container(spec.container_image, spec.gpus, body)
        return "\n".join([*header, *exports, *body, ""])
    if not spec.command:
        raise SbatchInputError("a job needs a command or a script")
    command = shlex.join(spec.command)
    if spec.container_image:
        nv = " --nv" if spec.gpus else ""
        command = f"apptainer exec{nv} {shlex.quote(spec.container_image)} {command}"
    title = _UNSAFE.sub("_", spec.name)
    return "\n".join(["#!/bin/bash", f"# Fabriek job {job.job_id}: {title}", *exports,
                      f"exec {command}", ""])  # fmt: skip


def build_sbatch(
    job: EngineJob,
    *,
    engine: str,
    log_dir: PurePath,
    tag_prefix: str = "fabriek",
    partition: str | None = None,
) -> SbatchRequest:
    """The sbatch call that starts `job`, tagged so that `known_jobs` finds it again."""
    spec = job.spec
    args = [
        "--parsable",
        f"--job-name={job_name(job, tag_prefix)}",
        f"--comment={job_tag(tag_prefix, job.job_id)}",
        f"--output={log_dir / log_file_name(engine, '%j', LogStream.STDOUT)}",
        f"--error={log_dir / log_file_name(engine, '%j', LogStream.STDERR)}",
        f"--nodes={spec.nodes}",
        f"--cpus-per-task={spec.cpus}",
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
    if spec.working_dir:
        args.append(f"--chdir={spec.working_dir}")
    if partition:
        args.append(f"--partition={partition}")
    if job.placement.nodes:
        args.append(f"--nodelist={','.join(job.placement.nodes)}")
    return SbatchRequest(args=tuple(args), script=build_script(job))
