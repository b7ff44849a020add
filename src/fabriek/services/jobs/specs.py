"""A job's spec from what a user sent (`spec_of`) and from its stored row (`spec_from_row`),
and why a new job waits.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from fabriek.domain import notebooks, rendezvous, sbatch
from fabriek.domain.errors import InvalidInput
from fabriek.domain.gpus import GPU_TYPES
from fabriek.domain.jobs import (
    JobDraft,
    JobSpec,
)
from fabriek.store.tables import (
    JobRow,
)


def _time_limit(value: str | int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, int):
        if value <= 0:
            raise InvalidInput.on("time_limit", "must be more than zero seconds")
        return value
    try:
        return sbatch.parse_duration(value)
    except InvalidInput as bad:
        raise InvalidInput.on(
            "time_limit", bad.problems[0].message if bad.problems else str(bad)
        ) from None


def spec_of(draft: JobDraft) -> JobSpec:
    """The job to run, from the draft and (for a script) its #SBATCH lines."""
    limit = _time_limit(draft.time_limit)
    gpu_type = draft.gpu_type.strip().lower() if draft.gpu_type else None
    if gpu_type is not None and gpu_type not in GPU_TYPES:
        raise InvalidInput.on(
            "gpu_type", f"no GPU type {draft.gpu_type!r}; known: {', '.join(GPU_TYPES)}"
        )
    common: dict[str, Any] = {
        "container_image": draft.container_image,
        "environment": dict(draft.environment),
        "working_dir": draft.working_dir,
    }
    if draft.script is not None:
        spec = sbatch.spec_from_script(
            draft.script, name=draft.name, gpus=draft.gpus, gpu_type=gpu_type,
            time_limit_s=limit, cpus=draft.cpus, memory_gb=draft.memory_gb, nodes=draft.nodes,
            **common,
        )  # fmt: skip
        if spec.gpu_type is not None and spec.gpu_type.lower() not in GPU_TYPES:
            raise InvalidInput.on(
                "script",
                f"#SBATCH asks for GPU type {spec.gpu_type!r}, which no site has; known: {', '.join(GPU_TYPES)}",
            )
        spec = replace(spec, gpu_type=spec.gpu_type.lower() if spec.gpu_type else None)
    else:
        # The draft's validator guarantees a command, except for a notebook (filled in here).
        command = notebooks.command_of(draft)
        defaults = JobSpec(name="job")
        spec = JobSpec(
            name=draft.name or notebooks.default_name(draft) or command[0].rsplit("/", 1)[-1][:200],
            command=tuple(command),
            gpus=draft.gpus if draft.gpus is not None else defaults.gpus,
            gpu_type=gpu_type,
            nodes=draft.nodes or defaults.nodes,
            cpus=draft.cpus or defaults.cpus,
            memory_gb=draft.memory_gb or defaults.memory_gb,
            time_limit_s=limit or defaults.time_limit_s,
            **common,
        )
    spec = _gpus_per_node(spec, draft)
    return replace(
        spec,
        earliest_start=draft.earliest_start,
        deadline=draft.deadline,
        preemptible=draft.preemptible,
        shiftable=draft.shiftable,
        web_port=notebooks.web_port_of(draft),
        web_app=draft.web_app,
    )


def _gpus_per_node(spec: JobSpec, draft: JobDraft) -> JobSpec:
    """The job's GPUs from --gpus-per-node (times its nodes, agreeing with --gpus if given);
    on several nodes they must split evenly, since every node runs the same task."""
    if draft.gpus_per_node is not None:
        total = rendezvous.total_gpus(draft.gpus, draft.gpus_per_node, spec.nodes)
        spec = replace(spec, gpus=total or 0)
    rendezvous.check_even(spec.gpus, spec.nodes)
    return spec


def waiting_reason(spec: JobSpec, now: datetime) -> str:
    """Why a just-submitted job waits."""
    if spec.earliest_start is not None and spec.earliest_start > now:
        return (
            f"NotBeforeStartTime: starts no earlier than {spec.earliest_start:%Y-%m-%d %H:%M} UTC"
        )
    return "queued"


def spec_from_row(row: JobRow) -> JobSpec:
    """The job to run, as the engines take it."""
    return JobSpec(
        name=row.name, command=tuple(row.command) if row.command is not None else None,
        script=row.script, container_image=row.container_image, gpus=row.gpus,
        gpu_type=row.gpu_type, nodes=row.nodes, cpus=row.cpus, memory_gb=row.memory_gb,
        time_limit_s=row.time_limit_s, environment=dict(row.environment or {}),
        working_dir=row.working_dir, earliest_start=row.earliest_start, deadline=row.deadline,
        preemptible=row.preemptible, shiftable=row.shiftable,
        web_port=row.web_port, web_app=row.web_app,
    )  # fmt: skip
