"""The live side of the scheduler: a snapshot from the store, decisions back into it.

The scheduling itself is `fabriek.scheduler.schedule`, the very function the simulator
replays traces with. This module only reads the factory into a `Snapshot` and turns
`Start`/`Preempt`/`Wait` decisions into state changes, in one transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from fabriek.domain.access.tracks import AccessConfig
from fabriek.domain.capacity import SiteShape
from fabriek.domain.dataset_staging import without_unstaged
from fabriek.domain.jobs import ACTIVE_STATES, JobState
from fabriek.domain.partners import WEB_APP_HOME, abroad_terms, kept_home, without_partners
from fabriek.domain.residency import ResidencyVerdict
from fabriek.domain.units import GpuHours
from fabriek.scheduler import (
    Node,
    NodeShare,
    PendingJob,
    Preempt,
    RunningJob,
    SiteState,
    Snapshot,
    Start,
    Wait,
    WaitReason,
    schedule,
    site_from_groups,
)
from fabriek.scheduler.carbon import DEFAULT_HEAT_WEIGHT, RUN_SHARE_MEMORY, ShiftConfig
from fabriek.scheduler.fairshare import DEFAULT_HALF_LIFE_S, UsageRecord, decayed_usage
from fabriek.scheduler.policy import SchedulerConfig
from fabriek.scheduler.power import PowerModel
from fabriek.scheduler.signals import HEAT_AHEAD_H, HourSignal, Signals
from fabriek.services.access import allocations
from fabriek.services.accounts.terms import sites_by_user
from fabriek.services.jobs import datasets as job_datasets
from fabriek.services.jobs.states import transition
from fabriek.store.tables import (
    GridIntensityRow,
    HeatDemandRow,
    JobRow,
    OrganisationRow,
    ProjectRow,
    SiteRow,
    UserRow,
)

PENDING_BATCH = 20_000
# The carbon forecast looks back a week; a day more covers its first hours.
CARBON_HISTORY_DAYS = 8
# Usage older than this many half-lives weighs under 0.4 %: not worth reading.
USAGE_HALF_LIVES = 8
# How long jobs run against their limits is learned from runs that ended this recently.
RUN_SHARE_DAYS = 7


@dataclass
class Placed:
    """What one cycle did, for the dispatcher's report."""

    started: int = 0
    preempted: int = 0


def _queue_nodes(shape: SiteShape, depth: int) -> tuple[Node, ...]:
    """A site that queues jobs itself (Slurm) shows its queue as extra, virtual nodes of its
    first GPU group: jobs placed there wait in the cluster's own queue."""
    group = next((g for g in shape.groups if g.gpu_type and g.gpus_per_node), None)
    if group is None or depth <= 0 or group.gpu_type is None:
        return ()
    count = -(-depth // group.gpus_per_node)
    return tuple(
        Node(f"{group.name}-queue-{i}", group.gpu_type, group.gpus_per_node, group.gpus_per_node)
        for i in range(count)
    )


def _sites(
    shapes: Sequence[SiteShape],
    depth: Mapping[str, int],
    down: frozenset[str],
    held: Mapping[tuple[str, str], int],
) -> list[SiteState]:
    sites = []
    for shape in shapes:
        if shape.name in down:
            continue
        base = site_from_groups(shape.name, shape.groups).nodes
        nodes = tuple(
            Node(n.name, n.gpu_type, n.gpus, max(0, n.gpus - held.get((shape.name, n.name), 0)))
            for n in (*base, *_queue_nodes(shape, depth.get(shape.name, 0)))
        )
        sites.append(SiteState(shape.name, nodes))
    return sites


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


def _latest_start(job: JobRow) -> float | None:
    """A shiftable job with a deadline may start as late as its deadline less its time
    limit; any other job is not flexible (a shiftable job without a deadline has no bound
    to shift within, so it is not held)."""
    if not job.shiftable or job.deadline is None:
        return None
    return job.deadline.timestamp() - job.time_limit_s


# -- one cycle: load (store -> values), decide (pure), apply (decisions -> store) ---------------


@dataclass(frozen=True)
class CycleInput:
    """Everything one cycle decides on, as plain values: no rows, no session. `project_of`
    names each waiting job's project, `charged_to` each project's current allocation row,
    `residency` why a waiting job's datasets confine it (when they do), and `down` the sites
    that cannot be reached, with `down_reasons` saying why."""

    snapshot: Snapshot
    project_of: Mapping[int, str]
    charged_to: Mapping[str, int]
    residency: Mapping[int, ResidencyVerdict] = field(default_factory=dict)
    down: frozenset[str] = frozenset()
    down_reasons: Mapping[str, str] = field(default_factory=dict)
    # Waiting jobs kept off partner factories' sites by their project, with the reason.
    kept_home: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Launch:
    """Start a waiting job: where, on which GPUs of which type, charged to which allocation
    at which factor."""

    job_id: int
    site: str
    nodes: tuple[NodeShare, ...]
    gpu_type: str | None
    allocation_id: int
    charge_factor: float


@dataclass(frozen=True)
class Eviction:
    """Ask a running job to stop, to make room for `for_job_id`."""

    job_id: int
    for_job_id: int
    reason: str


@dataclass(frozen=True)
class CyclePlan:
    """What one cycle decided: launches in the scheduler's order, evictions, and the reason
    each job that waits shows (job id -> words)."""

    launches: tuple[Launch, ...] = ()
    evictions: tuple[Eviction, ...] = ()
    waits: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadedCycle:
    """A cycle's input, with the waiting jobs' rows that applying its plan changes."""

    cycle: CycleInput
    rows: Mapping[int, JobRow]


def run_cycle(
    session: Session,
    shapes: Sequence[SiteShape],
    now: datetime,
    depth: Mapping[str, int],
    down: frozenset[str],
    down_reasons: Mapping[str, str],
    access: AccessConfig,
    usage: Mapping[tuple[str, str], GpuHours] | None = None,
    heat_weight: float = DEFAULT_HEAT_WEIGHT,
    run_shares: Sequence[float] | None = None,
) -> Placed:
    """Read the factory, schedule, and write the decisions (not committed). `usage` is the
    users' decayed recent usage and `run_shares` what share of their limits recent runs
    used (each read from the store when not given). `heat_weight` weighs heat demand
    against carbon in timing flexible jobs. A started job is charged to its project's
    current allocation at its GPU type's factor."""
    loaded = load(session, shapes, now, depth, down, down_reasons, access, usage, run_shares)
    if loaded is None:
        return Placed()
    return apply(session, decide(loaded.cycle, access, heat_weight), loaded.rows, now)


def load(
    session: Session,
    shapes: Sequence[SiteShape],
    now: datetime,
    depth: Mapping[str, int],
    down: frozenset[str],
    down_reasons: Mapping[str, str],
    access: AccessConfig,
    usage: Mapping[tuple[str, str], GpuHours] | None = None,
    run_shares: Sequence[float] | None = None,
) -> LoadedCycle | None:
    """Lock the active allocations and read what a cycle decides on; None when no job waits
    (then nothing else is read)."""
    now_s = now.timestamp()
    allocations.lock_active(session, now)
    waiting = _waiting(session, now)
    if not waiting:
        return None
    organisations: dict[str, str] = {}
    running, held, commitment = _running(session, now_s, organisations)
    pending: list[PendingJob] = []
    rows: dict[int, JobRow] = {}
    project_of: dict[int, str] = {}
    # Jobs reading datasets may use only the sites the data allows (read only when needed).
    terms = job_datasets.site_terms(session) if any(j.datasets for j, *_ in waiting) else []
    residency: dict[int, ResidencyVerdict] = {}
    # Jobs in an image may use only the sites that run images (the sites file says which).
    imaging = frozenset(s.name for s in shapes if s.containers)
    # Jobs reading datasets only the sites that can stage them (`dataset_staging`).
    unstaged = frozenset(s.name for s in shapes if not s.stages_datasets)
    # Partner factories: a project's jobs cross only where listed, and the residency rule
    # reads a partner's country (from the sites file), not what its site row declares.
    partners = [s.partner for s in shapes if s.partner is not None]
    terms = abroad_terms(terms, partners)
    everywhere = frozenset(s.name for s in shapes)
    kept: dict[int, str] = {}
    for job, project, user, org, _site in waiting:
        organisations[project] = org
        rows[job.id] = job
        project_of[job.id] = project
        verdict = job_datasets.sites_for(job.datasets, terms) if job.datasets else None
        home = kept_home(project, partners)
        if job.web_port is not None and partners:
            # Its app is reached through this factory's proxy, which cannot reach a partner.
            home = {**dict.fromkeys((p.site for p in partners), WEB_APP_HOME), **home}
        if verdict is not None:
            verdict = without_unstaged(verdict, unstaged)
            verdict = residency[job.id] = without_partners(verdict, home)
        allowed = _job_sites(job, verdict, imaging)
        if home:
            kept[job.id] = "; ".join(home[s] for s in sorted(home))
            allowed = (everywhere if allowed is None else allowed) - frozenset(home)
        pending.append(
            PendingJob(job.id, project, user, job.gpus, float(job.time_limit_s),
                       job.submitted_at.timestamp(), job.gpu_type, None, job.preemptible,
                       _latest_start(job), allowed)
        )  # fmt: skip
    current = allocations.for_cycle(session, now, access, organisations, organisations, commitment)
    signals = site_signals(session, shapes, now)
    ran: Sequence[float] = ()
    if signals.by_site and any(p.latest_start_s is not None for p in pending):
        ran = recent_run_shares(session, now) if run_shares is None else run_shares
    snapshot = Snapshot(
        now_s=now_s,
        pending=pending,
        running=running,
        sites=_sites(shapes, depth, down, held),
        allocations=current.allocations,
        usage=recent_usage(session, now_s) if usage is None else usage,
        gpu_hour_factors=access.gpu_hour_factors,
        signals=signals,
        run_shares=ran,
        # Terms of use keep a person off the sites whose current terms they did not accept.
        user_sites=sites_by_user(
            session, {j.user_id: u for j, _p, u, *_ in waiting}, [s.name for s in shapes], now
        ),
    )
    cycle = CycleInput(
        snapshot, project_of, current.charged_to, residency, down, down_reasons, kept
    )
    return LoadedCycle(cycle, rows)


def _job_sites(
    job: JobRow, verdict: ResidencyVerdict | None, imaging: frozenset[str]
) -> frozenset[str] | None:
    """The only sites a job may use, or None for any: its datasets' and, for a job in a
    container image, those that run images."""
    allowed = verdict.allowed if verdict is not None else None
    if not job.container_image:
        return allowed
    return imaging if allowed is None else allowed & imaging


def _waiting(session: Session, now: datetime) -> Sequence[Row[JobRow, str, str, str, str]]:
    """The jobs that may start now (at most `PENDING_BATCH`, oldest first), with their
    project, user, organisation and site names."""
    return session.execute(
        select(JobRow, ProjectRow.name, UserRow.username, OrganisationRow.name, SiteRow.name)
        .join(ProjectRow, ProjectRow.id == JobRow.project_id)
        .join(UserRow, UserRow.id == JobRow.user_id)
        .join(OrganisationRow, OrganisationRow.id == ProjectRow.organisation_id)
        .outerjoin(SiteRow, SiteRow.id == JobRow.site_id)
        .where(
            JobRow.state == JobState.PENDING.value,
            JobRow.earliest_start.is_(None) | (JobRow.earliest_start <= now),
        )
        .order_by(JobRow.id)
        .limit(PENDING_BATCH)
    ).all()


def _running(
    session: Session, now_s: float, organisations: dict[str, str]
) -> tuple[list[RunningJob], dict[tuple[str, str], int], dict[str, float]]:
    """The running jobs; the GPUs they hold per (site, node); and each project's normalised
    GPU-hours still ahead of them. Notes each running project's organisation."""
    # Running jobs as plain columns: a cycle reads all of them, and needs no objects.
    active = session.execute(
        select(
            JobRow.id, JobRow.placement, JobRow.started_at, JobRow.submitted_at,
            JobRow.time_limit_s, JobRow.preemptible, JobRow.charge_factor, ProjectRow.name,
            UserRow.username, OrganisationRow.name, SiteRow.name,
        )
        .join(ProjectRow, ProjectRow.id == JobRow.project_id)
        .join(UserRow, UserRow.id == JobRow.user_id)
        .join(OrganisationRow, OrganisationRow.id == ProjectRow.organisation_id)
        .join(SiteRow, SiteRow.id == JobRow.site_id)
        .where(JobRow.state.in_([s.value for s in ACTIVE_STATES]))
    ).all()  # fmt: skip
    held: dict[tuple[str, str], int] = defaultdict(int)
    running = []
    commitment: dict[str, float] = defaultdict(float)
    for (
        job_id,
        placement,
        started,
        _submitted,
        limit,
        preemptible,
        factor,
        project,
        user,
        org,
        site,
    ) in active:
        organisations[project] = org
        shares = tuple(NodeShare(str(n), int(g)) for n, g in placement or [])
        for share in shares:
            held[(site, share.node)] += share.gpus
        # A job still starting has used none of its time: all of its limit is ahead.
        began = started.timestamp() if started else now_s
        job_run = RunningJob(
            job_id, project, user, site, shares, began, began + limit, preemptible,
            factor if factor is not None else 1.0,
        )  # fmt: skip
        running.append(job_run)
        rest = max(0.0, job_run.expected_end_s - now_s) / 3600
        commitment[project] += job_run.gpus * rest * job_run.factor
    return running, held, commitment


def decide(
    cycle: CycleInput, access: AccessConfig, heat_weight: float = DEFAULT_HEAT_WEIGHT
) -> CyclePlan:
    """Schedule the snapshot and say what each decision does, in words users read: pure, no
    store. A job that waits while a site is down says so before its own reason."""
    snapshot = cycle.snapshot
    result = schedule(snapshot, SchedulerConfig(shift=ShiftConfig(heat_weight=heat_weight)))
    node_types = {(s.name, n.name): n.gpu_type for s in snapshot.sites for n in s.nodes}
    gpus = {p.job_id: p.gpus for p in snapshot.pending}
    launches: list[Launch] = []
    evictions: list[Eviction] = []
    waits: dict[int, str] = {}
    for decision in result.decisions:
        if isinstance(decision, Start):
            placed = (
                node_types[(decision.site, decision.nodes[0].node)]
                if gpus[decision.job_id]
                else None
            )
            launches.append(
                Launch(
                    decision.job_id,
                    decision.site,
                    decision.nodes,
                    placed,
                    cycle.charged_to[cycle.project_of[decision.job_id]],
                    access.factor(placed),
                )
            )
        elif isinstance(decision, Preempt):
            evictions.append(
                Eviction(decision.job_id, decision.for_job_id, f"Preempted: {decision.words}")
            )
        elif isinstance(decision, Wait):
            waits[decision.job_id] = _wait_words(cycle, decision)
    return CyclePlan(tuple(launches), tuple(evictions), waits)


def _wait_words(cycle: CycleInput, decision: Wait) -> str:
    """Why a job waits: its datasets' residency in full, and any site that is down."""
    words = f"{decision.reason.value}: {decision.words}"
    if decision.reason is WaitReason.TERMS_NOT_ACCEPTED:
        words = f"{decision.reason.value}: {decision.detail}; see `fabriek terms`"
    if decision.reason is WaitReason.RESIDENCY_CONSTRAINT and decision.job_id in cycle.residency:
        words = f"{decision.reason.value}: {cycle.residency[decision.job_id].explain()}"
    elif decision.reason is WaitReason.RESIDENCY_CONSTRAINT and decision.job_id in cycle.kept_home:
        words = f"PartnerSites: {cycle.kept_home[decision.job_id]}"
    elif decision.reason is WaitReason.RESIDENCY_CONSTRAINT:
        # No datasets confine it: its image does, to the sites that run images.
        words = (
            "ContainerSites: it runs in a container image, and none of the sites that run "
            "images (container_runtime in the sites file) can run it now"
        )
    if cycle.down and decision.reason.value in {"Resources", "Priority", "NeverFits"}:
        why = "; ".join(
            f"{s}: {cycle.down_reasons.get(s, 'unreachable')}" for s in sorted(cycle.down)
        )
        words = f"SiteUnavailable: {why} ({words})"
    return words


def apply(session: Session, plan: CyclePlan, rows: Mapping[int, JobRow], now: datetime) -> Placed:
    """Write a plan into the store (not committed): launched jobs go to STARTING on their
    site, evicted jobs still running are asked to stop, and waiting jobs get their reason
    (written only where it changed). `rows` are the waiting jobs the plan names."""
    site_ids = {n: i for n, i in session.execute(select(SiteRow.name, SiteRow.id))}
    placed = Placed()
    for launch in plan.launches:
        job = rows[launch.job_id]
        job.site_id = site_ids[launch.site]
        job.placement = [[share.node, share.gpus] for share in launch.nodes]
        # The nodes it asked for, or more where its GPUs were spread wider: every node
        # runs its task (a multi-node job's gang), so none asked for is dropped.
        job.nodes = max(job.nodes, len(launch.nodes))
        job.placed_gpu_type = launch.gpu_type
        job.allocation_id = launch.allocation_id
        job.charge_factor = launch.charge_factor
        transition(session, job, JobState.STARTING, f"starting on {launch.site}", now)
        placed.started += 1
    for eviction in plan.evictions:
        victim = session.get(JobRow, eviction.job_id)
        if victim is not None and victim.state in {s.value for s in ACTIVE_STATES}:
            victim.cancel_requested = True
            victim.preempted_for = eviction.for_job_id
            victim.reason = eviction.reason
            placed.preempted += 1
    for job_id, words in plan.waits.items():
        job = rows[job_id]
        if job.reason != words:
            job.reason = words[:500]
    return placed


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
