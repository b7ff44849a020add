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
    cpu_energy_rapl,
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
         for r in readings if r.get("mj")),
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


def measured_cpu_kwh_by_hour(
    readings: list[dict[str, Any]], job_cpus: int
) -> dict[datetime, float] | None:
    """The job's CPU energy per clock hour from the node's RAPL package counters (µJ, with
    wrap-around at each zone's range), times its share of the node's CPUs: the counters
    measure every job on the node. None with fewer than two readings that carry them."""
    parsed = sorted(
        (r for r in readings if r.get("rapl_uj")), key=lambda r: datetime.fromisoformat(r["at"])
    )
    if len(parsed) < 2:
        return None
    hours: dict[datetime, float] = defaultdict(float)
    for a, b in pairwise(parsed):
        t0, t1 = datetime.fromisoformat(a["at"]), datetime.fromisoformat(b["at"])
        zones = sorted(set(a["rapl_uj"]) & set(b["rapl_uj"]))
        share = min(1.0, max(1, job_cpus) / max(1, int(b.get("node_cpus", 1))))
        span = cpu_energy_rapl(
            [
                CounterReading(z, t, int(r["rapl_uj"][z]))
                for t, r in ((t0, a), (t1, b))
                for z in zones
            ],
            max((int(v) for v in b.get("rapl_range_uj", {}).values()), default=2**32),
        )
        for hour, part in split_by_hour(span, t0, t1):
            hours[hour] += part.value * share
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
    measured_cpu = measured_cpu_kwh_by_hour(job.energy_readings or [], job.cpus or 1)
    hours = hour_shares(job.started_at, ended)
    for hour, seconds in hours:
        modelled_cpu = modelled_energy(cpu_model, 1, seconds)
        cpu_kwh = measured_cpu.get(hour, 0.0) if measured_cpu is not None else modelled_cpu.value
        cpu_source = (
            f"{Source.MEASURED_RAPL.value} × CPU share"
            if measured_cpu is not None
            else modelled_cpu.source.value
        )
        if measured is not None:
            gpu_kwh = measured.get(hour, 0.0)
            source = f"{Source.MEASURED_NVML.value} GPUs, {cpu_source} CPUs"
        else:
            gpu = modelled_energy(gpu_model, job.gpus, seconds) if gpu_model else None
            gpu_kwh = gpu.value if gpu else 0.0
            model = gpu_model.name if gpu_model else "no GPU"
            source = (
                f"{modelled_cpu.source.value}: {model}"
                if measured_cpu is None
                else f"{modelled_cpu.source.value}: {model}; {cpu_source} CPUs"
            )
        session.add(
            JobEnergyRow(
                job_id=job.id,
                site_id=job.site_id,
                hour=hour,
                gpu_seconds=job.gpus * seconds,
                gpu_kwh=gpu_kwh,
                cpu_kwh=cpu_kwh,
                source=source,
            )
        )
    return len(hours)
