"""The operator's view of each site: its draw on the grid connection by hour against the
limit, its declared PUE, WUE and heat reuse, and what the ledger says it delivered.

Past hours come from the metering ledger (written when a run ends); the runs still going
are added with the same power model the ledger uses (`domain.energy`), so the hour in
progress shows without waiting for jobs to end.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from fabriek.domain.energy import (
    SiteFactors,
    cpu_power_model,
    facility_kwh,
    footprint,
    gpu_power_model,
)
from fabriek.domain.gpus import GPU_TYPES
from fabriek.domain.job_states import ACTIVE_STATE_VALUES
from fabriek.domain.roles import Principal, Role
from fabriek.domain.site_load import Running, hourly_it_kw, hours_before
from fabriek.domain.sites import Site
from fabriek.domain.units import KilowattHours
from fabriek.services.sites import site_from_row
from fabriek.store.tables import JobEnergyRow, JobRow, SiteRow

HOURS_SHOWN = 48
DELIVERED_DAYS = 30


@dataclass(frozen=True)
class SiteLoad:
    """One site's last `HOURS_SHOWN` hours and its last `DELIVERED_DAYS` days."""

    site: Site
    hours: list[datetime]
    it_kw: list[float]
    grid_kw: list[float]
    running_jobs: int
    running_it_kw: float
    peak_grid_kw: float
    facility_kwh: float  # over the last DELIVERED_DAYS
    litres_water: float
    kwh_heat_reused: float


def operated_sites(who: Principal) -> frozenset[str] | None:
    """The sites the caller operates; None: all of them (admins)."""
    if who.is_admin:
        return None
    return who.scopes(Role.SITE_OPERATOR)


def may_operate(who: Principal) -> bool:
    """Whether the caller may see the operator's page at all."""
    return who.is_admin or who.has_role(Role.SITE_OPERATOR)


def run_it_kw(gpus: int, gpu_type: str | None, cpus: int) -> float:
    """Modelled IT power of a running job, kW: its GPUs and CPU cores at the default
    utilisation (what the ledger assumes for a run without measurements)."""
    watts = cpu_power_model(cpus).power_w()
    if gpu_type and gpu_type in GPU_TYPES:
        watts += gpus * gpu_power_model(gpu_type).power_w()
    return watts / 1000.0


def site_loads(session: Session, who: Principal, now: datetime) -> list[SiteLoad]:
    """Every site the caller operates (all for admins), by name."""
    names = operated_sites(who)
    query = select(SiteRow).options(selectinload(SiteRow.node_groups)).order_by(SiteRow.name)
    if names is not None:
        query = query.where(SiteRow.name.in_(sorted(names)))
    rows = list(session.scalars(query))
    hours = hours_before(now, HOURS_SHOWN)
    since = now - timedelta(days=DELIVERED_DAYS)
    ids = [r.id for r in rows]
    ledger: dict[int, dict[datetime, float]] = defaultdict(dict)
    for site_id, hour, kwh in session.execute(
        select(JobEnergyRow.site_id, JobEnergyRow.hour,
               func.sum(JobEnergyRow.gpu_kwh + JobEnergyRow.cpu_kwh))
        .where(JobEnergyRow.site_id.in_(ids), JobEnergyRow.hour >= hours[0])
        .group_by(JobEnergyRow.site_id, JobEnergyRow.hour)
    ):  # fmt: skip
        ledger[site_id][hour] = float(kwh or 0.0)
    delivered: dict[int, float] = {
        site_id: float(kwh or 0.0)
        for site_id, kwh in session.execute(
            select(JobEnergyRow.site_id, func.sum(JobEnergyRow.gpu_kwh + JobEnergyRow.cpu_kwh))
            .where(JobEnergyRow.site_id.in_(ids), JobEnergyRow.hour >= since)
            .group_by(JobEnergyRow.site_id)
        )
    }
    running: dict[int, list[Running]] = defaultdict(list)
    for at_site, started, gpus, gpu_type, cpus in session.execute(
        select(JobRow.site_id, JobRow.started_at, JobRow.gpus, JobRow.placed_gpu_type,
               JobRow.cpus)
        .where(JobRow.site_id.in_(ids), JobRow.state.in_(ACTIVE_STATE_VALUES))
    ):  # fmt: skip
        if at_site is not None and started is not None:
            running[at_site].append(Running(started, run_it_kw(gpus, gpu_type, cpus)))
    out = []
    for row in rows:
        site = site_from_row(row)
        factors = SiteFactors(
            pue=site.pue or 1.0,
            wue_l_per_kwh=site.wue_l_per_kwh or 0.0,
            heat_reuse_share=site.heat_reuse_share or 0.0,
        )
        it = hourly_it_kw(hours, ledger[row.id], running[row.id], now)
        # An hour's kW drawn is its kWh: the same formula as the ledger's energy.
        grid = [facility_kwh(KilowattHours(kw), factors.pue).value for kw in it]
        month = footprint(KilowattHours(delivered.get(row.id, 0.0)), factors)
        out.append(
            SiteLoad(
                site=site, hours=hours, it_kw=it, grid_kw=grid,
                running_jobs=len(running[row.id]),
                running_it_kw=sum(r.it_kw for r in running[row.id]),
                peak_grid_kw=max(grid, default=0.0),
                facility_kwh=month.facility.value,
                litres_water=month.water.value,
                kwh_heat_reused=month.heat_reused.value,
            )
        )  # fmt: skip
    return out
