"""What the scheduler weighs beside GPUs, read from the store: each site's power budget,
grid carbon and heat demand; how long recent runs lasted against their limits; and each
user's recent, decayed usage for fair share.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.capacity import SiteShape
from fabriek.domain.units import GpuHours
from fabriek.scheduler.carbon import RUN_SHARE_MEMORY
from fabriek.scheduler.fairshare import DEFAULT_HALF_LIFE_S, UsageRecord, decayed_usage
from fabriek.scheduler.power import PowerModel
from fabriek.scheduler.signals import HEAT_AHEAD_H, HourSignal, Signals
from fabriek.store.tables import (
    GridIntensityRow,
    HeatDemandRow,
    JobRow,
    ProjectRow,
    SiteRow,
    UserRow,
)

# The carbon forecast looks back a week; a day more covers its first hours.
CARBON_HISTORY_DAYS = 8
# Usage older than this many half-lives weighs under 0.4 %: not worth reading.
USAGE_HALF_LIVES = 8
# How long jobs run against their limits is learned from runs that ended this recently.
RUN_SHARE_DAYS = 7


def site_signals(session: Session, shapes: Sequence[SiteShape], now: datetime) -> Signals:
    """What the scheduler weighs beside GPUs, per site.

    Each site's grid connection is a standing power budget on IT load: a limit L at PUE p
    allows L / p kW, so running jobs' IT power × PUE never exceeds L (GPU power by the power
    model at its default utilisation; only the jobs Fabriek runs are counted).

    The carbon intensity of each site's grid zone over the past `CARBON_HISTORY_DAYS`
    (`fabriek grid load`): the scheduler forecasts from it, past hours only, and holds
    flexible jobs (shiftable, with a deadline) for cleaner hours within their slack. A
    zone without recent data gives no forecast, and nothing is shifted there.

    The heat demand of the zone (`fabriek heat load`), from this hour up to `HEAT_AHEAD_H`
    ahead, at sites that declare a heat-reuse share: heat nobody takes is worth nothing,
    so a site without reuse is timed by carbon alone. Heat demand is a calendar profile,
    so its hours to come are known, not forecast.
    """
    standing = {s.name: s.grid_limit_kw / (s.pue or 1.0) for s in shapes if s.grid_limit_kw}
    budgets = {name: HourSignal(power_budget_kw=kw) for name, kw in standing.items()}
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    first = this_hour - timedelta(days=CARBON_HISTORY_DAYS)
    zones = {s.grid_zone for s in shapes}
    history: dict[str, dict[datetime, float]] = defaultdict(dict)
    for zone, hour, value in session.execute(
        select(GridIntensityRow.zone, GridIntensityRow.hour, GridIntensityRow.g_per_kwh).where(
            GridIntensityRow.zone.in_(zones),
            GridIntensityRow.hour >= first,
            GridIntensityRow.hour < now,
        )
    ):
        history[zone][hour] = value
    reusing = set(
        session.scalars(
            select(SiteRow.name).where(
                SiteRow.name.in_([s.name for s in shapes]), SiteRow.heat_reuse_share > 0
            )
        )
    )
    heat_zones = {s.grid_zone for s in shapes if s.name in reusing and history.get(s.grid_zone)}
    demand: dict[str, dict[datetime, float]] = defaultdict(dict)
    if heat_zones:
        for zone, hour, value in session.execute(
            select(HeatDemandRow.zone, HeatDemandRow.hour, HeatDemandRow.demand).where(
                HeatDemandRow.zone.in_(heat_zones),
                HeatDemandRow.hour >= this_hour,
                HeatDemandRow.hour < this_hour + timedelta(hours=HEAT_AHEAD_H),
            )
        ):
            demand[zone][hour] = value
    past = int((now - first).total_seconds() // 3600) + 1
    by_site: dict[str, list[HourSignal]] = {}
    for s in shapes:
        carbon = history.get(s.grid_zone)
        if not carbon:
            continue
        heat = demand.get(s.grid_zone) if s.name in reusing else None
        # Every hour carries the standing grid budget: a window inside the series is
        # capped as one beyond it is.
        budget = standing.get(s.name)
        hours = past + (HEAT_AHEAD_H - 1 if heat else 0)
        when = [first + timedelta(hours=i) for i in range(hours)]
        by_site[s.name] = [
            HourSignal(budget, carbon.get(t), heat.get(t) if heat else None) for t in when
        ]
    if not budgets and not by_site:
        return Signals()
    return Signals(
        start_s=first.timestamp(), by_site=by_site, outside=budgets, power=PowerModel(pue=1.0)
    )


def recent_run_shares(session: Session, now: datetime) -> list[float]:
    """What share of its time limit each of the latest ended runs used (at most
    `RUN_SHARE_MEMORY`, ended within `RUN_SHARE_DAYS`): how long runs last against their
    limits, which is how long a flexible job is planned to run when it is timed."""
    rows = session.execute(
        select(JobRow.started_at, JobRow.ended_at, JobRow.time_limit_s)
        .where(
            JobRow.started_at.is_not(None),
            JobRow.ended_at >= now - timedelta(days=RUN_SHARE_DAYS),
            JobRow.time_limit_s > 0,
        )
        .order_by(JobRow.ended_at.desc())
        .limit(RUN_SHARE_MEMORY)
    ).all()
    return [
        max(0.0, (ended - started).total_seconds()) / limit
        for started, ended, limit in rows
        if started is not None and ended is not None
    ]


def recent_usage(session: Session, now_s: float) -> dict[tuple[str, str], GpuHours]:
    """Each user's recent GPU-hours, decayed with the fair-share half-life."""
    since = now_s - USAGE_HALF_LIVES * DEFAULT_HALF_LIFE_S
    rows = session.execute(
        select(ProjectRow.name, UserRow.username, JobRow.gpus, JobRow.started_at, JobRow.ended_at)
        .join(ProjectRow, ProjectRow.id == JobRow.project_id)
        .join(UserRow, UserRow.id == JobRow.user_id)
        .where(JobRow.started_at.is_not(None), JobRow.gpus > 0)
        .where(
            JobRow.ended_at.is_(None) | (JobRow.ended_at >= datetime.fromtimestamp(since, tz=UTC))
        )
    ).all()
    records = []
    for project, user, gpus, started, ended in rows:
        if started is None:  # excluded by the query; kept for the type checker
            continue
        end_s = ended.timestamp() if ended else now_s
        hours = gpus * max(0.0, end_s - started.timestamp()) / 3600.0
        records.append(UsageRecord(project, user, GpuHours(hours), end_s))
    return decayed_usage(records, now_s)
