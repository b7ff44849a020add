"""Metering: the energy of each job run, per clock hour, written when the run stops.

Where the engine reports no measured energy (no NVML on the node, or the `local` engine
without GPUs), the figure comes from the site's power model: the placed GPU type's idle and
full power at the job's utilisation (the documented default when it reports none), and
the job's CPU cores likewise. Every record names its source, so a rollup says how much of
what it shows was measured and how much modelled.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from fabriek.domain.energy import (
    cpu_power_model,
    gpu_power_model,
    hour_shares,
    modelled_energy,
)
from fabriek.domain.gpus import GPU_TYPES
from fabriek.store.tables import JobEnergyRow, JobRow


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
    hours = hour_shares(job.started_at, ended)
    for hour, seconds in hours:
        gpu = modelled_energy(gpu_model, job.gpus, seconds) if gpu_model else None
        cpu = modelled_energy(cpu_model, 1, seconds)
        session.add(
            JobEnergyRow(
                job_id=job.id,
                site_id=job.site_id,
                hour=hour,
                gpu_seconds=job.gpus * seconds,
                gpu_kwh=gpu.value if gpu else 0.0,
                cpu_kwh=cpu.value,
                source=f"{cpu.source.value}: {gpu_model.name if gpu_model else 'no GPU'}",
            )
        )
    return len(hours)
