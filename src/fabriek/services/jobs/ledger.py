"""A job's energy ledger as its page shows it: hour by hour, GPU and CPU energy, the GPUs'
average power, facility energy and carbon."""

from __future__ import annotations

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from fabriek.domain.job_ledger import JobEnergy, LedgerHour, job_ledger
from fabriek.domain.roles import Principal
from fabriek.domain.units import KilowattHours
from fabriek.services.jobs.queries import get_job
from fabriek.store.tables import GridIntensityRow, JobEnergyRow, SiteRow


def job_hours(session: Session, who: Principal, job_id: int) -> list[LedgerHour]:
    """The ledger of a job the caller may see (NotFound otherwise), in time order; empty
    until a run of it has stopped (a run is metered when it stops)."""
    job = get_job(session, who, job_id)
    rows = session.execute(
        select(
            JobEnergyRow.hour, JobEnergyRow.gpu_kwh, JobEnergyRow.cpu_kwh,
            JobEnergyRow.gpu_seconds, SiteRow.pue, GridIntensityRow.g_per_kwh,
        )
        .join(SiteRow, SiteRow.id == JobEnergyRow.site_id)
        .outerjoin(
            GridIntensityRow,
            and_(GridIntensityRow.zone == SiteRow.grid_zone,
                 GridIntensityRow.hour == JobEnergyRow.hour),
        )
        .where(JobEnergyRow.job_id == job_id)
        .order_by(JobEnergyRow.hour, JobEnergyRow.id)
    ).all()  # fmt: skip
    records = [
        JobEnergy(hour, KilowattHours(gpu), KilowattHours(cpu), seconds, pue or 1.0, g)
        for hour, gpu, cpu, seconds, pue, g in rows
    ]
    return job_ledger(records, job.gpus)
