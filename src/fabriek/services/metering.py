"""Metering: the energy of each job run, per clock hour, written when the run stops.

Where the engine reads the GPUs' total-energy counters (NVML; see `local_runner`), a run's
GPU energy is their differences, shared over the hours between readings (the runner reads
at the start, at every clock hour and at the end). Where the engine reports no measured energy (no NVML on the node, or the `local` engine
without GPUs), the figure comes from the site's power model: the placed GPU type's idle and
full power at the job's utilisation (the documented default when it reports none), and
the job's CPU cores likewise. Every record names its source, so a rollup says how much of
what it shows was measured and how much modelled.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from itertools import pairwise
from typing import Any

from sqlalchemy.orm import Session

from fabriek.domain.energy import (
    CounterReading,
    Source,
    cpu_power_model,
    gpu_energy_nvml,
    gpu_power_model,
    hour_shares,
    modelled_energy,
    split_by_hour,
)
from fabriek.domain.gpus import GPU_TYPES
from fabriek.store.tables import JobEnergyRow, JobRow


def measured_gpu_kwh_by_hour(readings: list[dict[str, Any]]) -> dict[datetime, float] | None:
    """GPU energy per clock hour from the engine's counter readings (each {"at", "mj"}):
    each span between two readings is differenced per GPU and shared over the hours it
    covers. None with fewer than two readings: nothing was measured."""
    parsed = sorted(
        ((datetime.fromisoformat(r["at"]), {str(g): int(v) for g, v in r["mj"].items()})
         for r in readings),
        key=lambda r: r[0],
    )  # fmt: skip
    if len(parsed) < 2:
        return None
    hours: dict[datetime, float] = defaultdict(float)
    for (t0, a), (t1, b) in pairwise(parsed):
        gpus = sorted(set(a) & set(b))
        span = gpu_energy_nvml(
            [CounterReading(g, t, v[g]) for t, v in ((t0, a), (t1, b)) for g in gpus], gpus
        )
        for hour, part in split_by_hour(span, t0, t1):
            hours[hour] += part.value
    return dict(hours)


def record_energy(session: Session, job: JobRow, now: datetime) -> int:
    """Write the hourly energy records of a job run that stopped; how many hours. Called in
    the transaction that records the stop, like the budget's charge: once per run."""
    if job.started_at is None or job.site_id is None:
        return 0
    ended = job.ended_at if job.ended_at is not None and job.ended_at >= job.started_at else now
    gpu_model = (
        gpu_power_model(job.placed_gpu_type)
        if job.gpus and job.placed_gpu_type in GPU_TYPES
        else None
    )
    cpu_model = cpu_power_model(max(1, job.cpus or 1))
    measured = measured_gpu_kwh_by_hour(job.energy_readings or []) if job.gpus else None
    hours = hour_shares(job.started_at, ended)
    for hour, seconds in hours:
        cpu = modelled_energy(cpu_model, 1, seconds)
        if measured is not None:
            gpu_kwh = measured.get(hour, 0.0)
            source = f"{Source.MEASURED_NVML.value} GPUs, {cpu.source.value} CPUs"
        else:
            gpu = modelled_energy(gpu_model, job.gpus, seconds) if gpu_model else None
            gpu_kwh = gpu.value if gpu else 0.0
            source = f"{cpu.source.value}: {gpu_model.name if gpu_model else 'no GPU'}"
        session.add(
            JobEnergyRow(
                job_id=job.id,
                site_id=job.site_id,
                hour=hour,
                gpu_seconds=job.gpus * seconds,
                gpu_kwh=gpu_kwh,
                cpu_kwh=cpu.value,
                source=source,
            )
        )
    return len(hours)
