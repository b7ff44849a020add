"""Energy and carbon per 1,000 tokens of a project's endpoints, from the energy ledger's
hourly records of their replicas' jobs (`services.energy.usage.energy_records`, with each
site's PUE and the hour's grid intensity) and the tokens the gateway metered."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fabriek.domain.endpoint_keys import EndpointEnergy
from fabriek.domain.roles import Principal
from fabriek.domain.usage import hour_footprint
from fabriek.services.endpoints.keys import member_project
from fabriek.services.energy.usage import energy_records
from fabriek.store.tables import JobEnergyRow
from fabriek.store.tables.endpoints import EndpointReplicaRow, EndpointRow, EndpointUsageRow

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _per_1k(amount: float, tokens: int) -> float | None:
    return round(amount * 1000 / tokens, 9) if tokens else None


def endpoint_energy(
    session: Session,
    who: Principal,
    project: str,
    since: date | None = None,
    until: date | None = None,
) -> list[EndpointEnergy]:
    """Per endpoint of the project: tokens served, its replicas' energy and carbon, and both
    per 1,000 tokens, within [since, until] (UTC days; all time when not given)."""
    row_p = member_project(session, who, project, manage=False)
    start = datetime.combine(since, time(), UTC) if since else _EPOCH
    end = (
        datetime.combine(until + timedelta(days=1), time(), UTC)
        if until
        else datetime.now(UTC) + timedelta(days=1)
    )
    endpoints = list(
        session.scalars(
            select(EndpointRow).where(EndpointRow.project_id == row_p.id).order_by(EndpointRow.name)
        )
    )
    jobs: dict[int, int] = {
        job_id: endpoint_id
        for job_id, endpoint_id in session.execute(
            select(EndpointReplicaRow.job_id, EndpointReplicaRow.endpoint_id).where(
                EndpointReplicaRow.endpoint_id.in_([e.id for e in endpoints])
            )
        )
    }
    tokens_q = select(
        EndpointUsageRow.endpoint_id,
        func.sum(EndpointUsageRow.prompt_tokens + EndpointUsageRow.completion_tokens),
    ).where(EndpointUsageRow.project_id == row_p.id)
    if since is not None:
        tokens_q = tokens_q.where(EndpointUsageRow.day >= since)
    if until is not None:
        tokens_q = tokens_q.where(EndpointUsageRow.day <= until)
    tokens = {
        e: int(t or 0) for e, t in session.execute(tokens_q.group_by(EndpointUsageRow.endpoint_id))
    }
    sums: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0, 0.0])
    if jobs:
        for record in energy_records(session, start, end, JobEnergyRow.job_id.in_(list(jobs))):
            hour = hour_footprint(record)
            s = sums[jobs[record.job_id]]
            s[0] += record.gpu_seconds / 3600
            s[1] += hour.it.value
            s[2] += hour.facility.value
            if hour.carbon is None:
                s[4] += hour.facility.value
            else:
                s[3] += hour.carbon.value
    out = []
    for e in endpoints:
        gpu_h, it, facility, kg, unknown = sums[e.id]
        n = tokens.get(e.id, 0)
        out.append(
            EndpointEnergy(
                endpoint=e.name, model=e.model, tokens=n, gpu_hours=round(gpu_h, 6),
                it_kwh=round(it, 6), facility_kwh=round(facility, 6), kg_co2e=round(kg, 6),
                kwh_without_intensity=round(unknown, 6), kwh_per_1k_tokens=_per_1k(facility, n),
                g_co2e_per_1k_tokens=_per_1k(kg * 1000, n),
            )
        )  # fmt: skip
    return out


def inference_energy(session: Session, version_id: int) -> tuple[float, float, int, int]:
    """What serving a model version used: (IT kWh, facility kWh, tokens, replica jobs), from
    the replicas that served it (of any endpoint) and the tokens their endpoints metered
    (all of an endpoint's tokens when it served only this version)."""
    replicas = session.execute(
        select(EndpointReplicaRow.job_id, EndpointReplicaRow.endpoint_id).where(
            EndpointReplicaRow.model_version_id == version_id
        )
    ).all()
    if not replicas:
        return 0.0, 0.0, 0, 0
    job_ids = [j for j, _ in replicas]
    it = facility = 0.0
    for record in energy_records(
        session, _EPOCH, datetime.now(UTC) + timedelta(days=1), JobEnergyRow.job_id.in_(job_ids)
    ):
        hour = hour_footprint(record)
        it += hour.it.value
        facility += hour.facility.value
    only_this = [
        e
        for e in {e for _, e in replicas}
        if session.scalar(
            select(func.count()).where(
                EndpointReplicaRow.endpoint_id == e,
                EndpointReplicaRow.model_version_id.is_distinct_from(version_id),
            )
        )
        == 0
    ]
    tokens = 0
    if only_this:
        tokens = int(
            session.scalar(
                select(
                    func.coalesce(
                        func.sum(
                            EndpointUsageRow.prompt_tokens + EndpointUsageRow.completion_tokens
                        ),
                        0,
                    )
                ).where(EndpointUsageRow.endpoint_id.in_(only_this))
            )
            or 0
        )
    return it, facility, tokens, len(job_ids)
