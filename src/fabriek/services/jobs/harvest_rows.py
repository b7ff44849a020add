"""The rows one harvested Slurm record becomes: its job, its charge, its hourly energy.

Built as plain dictionaries for bulk inserts (a harvest writes thousands at once), with the
same formulas as Fabriek's own jobs: the charge is `charge(gpus, seconds, factor)` as
`record_charge` writes it, and the energy is the site's power model per clock hour as
`metering.record_energy` writes it, unless Slurm measured the job's energy
(acct_gather_energy), which is then shared over the hours the job ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fabriek.domain.access.budgets import charge
from fabriek.domain.energy import cpu_power_model, gpu_power_model, hour_shares, modelled_energy
from fabriek.domain.gpus import GPU_TYPES
from fabriek.domain.slurm_accounting import MEASURED_SOURCE, AccountingRecord

ORIGIN = "slurm"
# The key jobs.energy_readings holds a harvested job's measured energy under (joules), so a
# later harvest can tell whether it changed; metering reads only "mj" and "rapl_uj" there.
ENERGY_KEY = "slurm_energy_j"


@dataclass(frozen=True)
class Owner:
    """Whose a harvested job is, and where it is charged: found by the harvest."""

    user_id: int
    project_id: int
    site_id: int
    gpu_type: str | None
    allocation_id: int | None
    factor: float


def job_values(record: AccountingRecord, owner: Owner, now: datetime) -> dict[str, Any]:
    """The jobs row of a run typed with sbatch at the site (origin "slurm")."""
    started = record.started_at or record.ended_at
    return {
        "project_id": owner.project_id,
        "user_id": owner.user_id,
        "name": (record.name or f"slurm-{record.job_id}")[:200],
        "command": None,
        "script": None,
        "container_image": None,
        "gpus": record.gpus,
        "gpu_type": record.gpu_type,
        "nodes": max(1, record.nodes),
        "cpus": max(1, record.cpus),
        "memory_gb": -(-record.memory_mb // 1024),
        "time_limit_s": max(0, record.elapsed_s),
        "environment": {},
        "state": record.fabriek_state,
        "reason": reason(record),
        "site_id": owner.site_id,
        "placed_gpu_type": owner.gpu_type,
        "handle": str(record.job_id),
        "gpu_seconds": float(record.gpus * max(0, record.elapsed_s)),
        "energy_readings": energy_readings(record),
        "allocation_id": owner.allocation_id,
        "charge_factor": owner.factor,
        "submitted_at": record.submitted_at,
        "started_at": started,
        "ended_at": record.ended_at,
        "origin": ORIGIN,
        "slurm_cluster": record.cluster,
        "slurm_job_id": record.job_id,
        "slurm_submitted_at": record.submitted_at,
        "preemptible": False,
        "shiftable": False,
        "cancel_requested": False,
    }


def reason(record: AccountingRecord) -> str:
    """What a person reading the job sees about where it came from."""
    words = f"typed with sbatch at {record.cluster}: Slurm job {record.job_id}"
    if record.array_job_id is not None:
        words += f" (array {record.array_job_id} task {record.array_task_id})"
    if record.het_job_id is not None:
        words += f" (heterogeneous job {record.het_job_id} component {record.het_offset})"
    if record.state in {"REQUEUED", "PREEMPTED"}:
        words += f", {record.state.lower()}: its next run is its own record"
    return words[:500]


def energy_readings(record: AccountingRecord) -> list[dict[str, Any]] | None:
    return None if record.energy_j is None else [{ENERGY_KEY: record.energy_j}]


def stored_energy(readings: list[dict[str, Any]] | None) -> int | None:
    """The measured energy a harvested job's row holds, if any."""
    for reading in readings or []:
        if ENERGY_KEY in reading:
            return int(reading[ENERGY_KEY])
    return None


def charge_values(
    record: AccountingRecord, job_id: int, allocation_id: int, gpu_type: str | None, factor: float
) -> dict[str, Any]:
    """The ledger line of a harvested run: allocated GPUs times its elapsed time."""
    ended = record.ended_at or record.submitted_at
    return {
        "allocation_id": allocation_id,
        "job_id": job_id,
        "gpus": record.gpus,
        "gpu_type": gpu_type,
        "started_at": record.started_at or ended,
        "ended_at": ended,
        "raw_gpu_hours": charge(record.gpus, record.elapsed_s, 1.0).value,
        "factor": factor,
        "gpu_hours": charge(record.gpus, record.elapsed_s, factor).value,
    }


def energy_values(
    record: AccountingRecord, job_id: int, site_id: int, gpu_type: str | None
) -> list[dict[str, Any]]:
    """The hourly energy rows of a harvested run: measured by Slurm, else modelled."""
    if record.started_at is None or record.ended_at is None:
        return []
    hours = hour_shares(record.started_at, record.ended_at)
    total = sum(seconds for _, seconds in hours)
    if not hours or total <= 0:
        return []
    measured = record.energy
    gpu_model = gpu_power_model(gpu_type) if record.gpus and gpu_type in GPU_TYPES else None
    cpu_model = cpu_power_model(max(1, record.cpus))
    rows = []
    for hour, seconds in hours:
        if measured is not None:
            # The node's energy over the job, as Slurm measured it: IT energy, not split.
            gpu_kwh, cpu_kwh, source = measured.value * seconds / total, 0.0, MEASURED_SOURCE
        else:
            cpu = modelled_energy(cpu_model, 1, seconds)
            gpu = modelled_energy(gpu_model, record.gpus, seconds) if gpu_model else None
            gpu_kwh, cpu_kwh = (gpu.value if gpu else 0.0), cpu.value
            source = f"{cpu.source.value}: {gpu_model.name if gpu_model else 'no GPU'}"
        rows.append(
            {
                "job_id": job_id,
                "site_id": site_id,
                "hour": hour,
                "gpu_seconds": record.gpus * seconds,
                "gpu_kwh": gpu_kwh,
                "cpu_kwh": cpu_kwh,
                "source": source[:60],
            }
        )
    return rows
