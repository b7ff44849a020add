"""What each resource of the platform used, per component and month, from the store: the
GPU-hours of the allocation's ledger (`charges`, normalised as the award is) and the IT
energy of its jobs' hourly records (`job_energy`). Both grow when late accounting arrives
(a Slurm site's harvest, a run that ended after the month did), so a month's figure is
recomputed at every sync and sent again when it changed."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.federation import (
    Period,
    UsageFigure,
    ended_periods,
    reports_due,
    split_by_month,
)
from fabriek.store.tables import (
    AllocationRow,
    ChargeRow,
    FederationResourceRow,
    FederationUsageRow,
    JobEnergyRow,
    JobRow,
)

Key = tuple[str, str, Period]


def measured(
    session: Session, now: datetime, gpu_hours_component: str, energy_component: str
) -> dict[Key, float]:
    """Every resource's use in each month of its allocation that has ended: GPU-hours and
    kWh, zero where nothing ran (a month with no use is reported as zero, once)."""
    resources = session.execute(
        select(
            FederationResourceRow.resource_uuid, AllocationRow.id, AllocationRow.starts_at,
            AllocationRow.ends_at,
        ).join(AllocationRow, AllocationRow.id == FederationResourceRow.allocation_id)
    ).all()  # fmt: skip
    if not resources:
        return {}
    by_allocation = {allocation: uuid for uuid, allocation, _s, _e in resources}
    figures: dict[Key, float] = {}
    due: dict[str, set[Period]] = {}
    for uuid, _allocation, starts, ends in resources:
        due[uuid] = set(ended_periods(starts, ends, now))
        for period in due[uuid]:
            figures[(uuid, gpu_hours_component, period)] = 0.0
            figures[(uuid, energy_component, period)] = 0.0
    hours: dict[Key, float] = defaultdict(float)
    for allocation_id, started, ended, amount in session.execute(
        select(
            ChargeRow.allocation_id, ChargeRow.started_at, ChargeRow.ended_at, ChargeRow.gpu_hours
        ).where(ChargeRow.allocation_id.in_(list(by_allocation)))
    ):
        uuid = by_allocation[allocation_id]
        for period, share in split_by_month(started, ended, amount).items():
            hours[(uuid, gpu_hours_component, period)] += share
    kwh: dict[Key, float] = defaultdict(float)
    for job_allocation, hour, gpu_kwh, cpu_kwh in session.execute(
        select(JobRow.allocation_id, JobEnergyRow.hour, JobEnergyRow.gpu_kwh, JobEnergyRow.cpu_kwh)
        .join(JobRow, JobRow.id == JobEnergyRow.job_id)
        .where(JobRow.allocation_id.in_(list(by_allocation)))
    ):
        if job_allocation is None:  # pragma: no cover - the query asks for allocations
            continue
        uuid = by_allocation[job_allocation]
        kwh[(uuid, energy_component, Period.of(hour))] += gpu_kwh + cpu_kwh
    for source in (hours, kwh):
        for key, value in source.items():
            if key[2] in due[key[0]]:
                figures[key] = value
    return figures


def reported(session: Session) -> dict[Key, float]:
    """What the platform was last sent, per resource, component and month."""
    return {
        (r.resource_uuid, r.component, Period.parse(r.period)): r.amount
        for r in session.scalars(select(FederationUsageRow))
    }


def due_reports(
    session: Session, now: datetime, gpu_hours_component: str, energy_component: str
) -> list[UsageFigure]:
    """The figures to send now: never sent, or changed since they were sent."""
    return reports_due(
        measured(session, now, gpu_hours_component, energy_component), reported(session)
    )


def record_sent(session: Session, figures: list[UsageFigure], now: datetime) -> None:
    """Note figures the platform accepted, in the caller's transaction."""
    for figure in figures:
        key = (figure.resource_uuid, figure.component, str(figure.period))
        row = session.get(FederationUsageRow, key)
        if row is None:
            session.add(
                FederationUsageRow(
                    resource_uuid=figure.resource_uuid, component=figure.component,
                    period=str(figure.period), amount=figure.amount, revision=1,
                    reported_at=now,
                )
            )  # fmt: skip
        else:
            row.amount = figure.amount
            row.revision += 1
            row.reported_at = now
