"""One job's ledger hour by hour: its GPU and CPU energy, the GPUs' average power, the
facility energy and the carbon of each clock hour it ran, by the formulas of
`domain.energy`. Pure: the service reads the job's hourly energy records with their site's
PUE and the hour's grid intensity."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from fabriek.domain.energy import carbon_at, facility_kwh
from fabriek.domain.units import KgCO2e, KilowattHours, Watts

# Joules in a kilowatt-hour.
_J_PER_KWH = 3_600_000.0


@dataclass(frozen=True)
class JobEnergy:
    """One run of a job in one clock hour, as the energy ledger holds it, with its site's
    PUE and the hour's grid intensity (g CO2e per kWh; None when none is known)."""

    hour: datetime
    gpu_kwh: KilowattHours
    cpu_kwh: KilowattHours
    # GPUs held × seconds run within the hour.
    gpu_seconds: float
    pue: float
    g_per_kwh: float | None


@dataclass(frozen=True)
class LedgerHour:
    """A job's figures for one clock hour. `gpu_power` is the job's GPUs together, averaged
    over the seconds it ran in the hour (None for a job without GPUs); `carbon` is
    location-based, facility energy × the hour's grid intensity (None when no intensity is
    known for any of it: never counted as zero)."""

    hour: datetime
    gpu_energy: KilowattHours
    cpu_energy: KilowattHours
    gpu_power: Watts | None
    facility_energy: KilowattHours
    carbon: KgCO2e | None


def average_power(energy: KilowattHours, seconds: float) -> Watts:
    """The average power that delivers `energy` in `seconds` (zero when no time passed)."""
    return Watts(energy.value * _J_PER_KWH / seconds if seconds > 0 else 0.0)


def job_ledger(records: Iterable[JobEnergy], gpus: int) -> list[LedgerHour]:
    """The job's hours in time order; runs that share an hour (a preempted job that ran
    again) are summed."""
    by_hour: dict[datetime, list[JobEnergy]] = {}
    for r in records:
        by_hour.setdefault(r.hour, []).append(r)
    out = []
    for hour in sorted(by_hour):
        runs = by_hour[hour]
        gpu = sum((r.gpu_kwh for r in runs), KilowattHours.zero())
        cpu = sum((r.cpu_kwh for r in runs), KilowattHours.zero())
        facility = sum(
            (facility_kwh(r.gpu_kwh + r.cpu_kwh, r.pue) for r in runs), KilowattHours.zero()
        )
        known = [
            carbon_at(facility_kwh(r.gpu_kwh + r.cpu_kwh, r.pue), r.g_per_kwh)
            for r in runs
            if r.g_per_kwh is not None
        ]
        carbon = sum(known, KgCO2e.zero()) if known else None
        seconds_run = sum(r.gpu_seconds for r in runs) / gpus if gpus > 0 else 0.0
        power = average_power(gpu, seconds_run) if gpus > 0 else None
        out.append(LedgerHour(hour, gpu, cpu, power, facility, carbon))
    return out
