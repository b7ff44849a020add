"""The factory's state as Prometheus gauges, read from the database at scrape time.

Every server reports these, leader or not: they are a few aggregate queries over the store
(jobs by site, state and reason class; power against the grid limit; budgets left; queues
that must drain), never a series per job, person or project. Labels are bounded: a site, a
job state, a reason class (`domain.reason_classes`), a mail queue, a lease's role.

A scrape that cannot read the database still answers: `fabriek_factory_scrape_ok` is 0 and
the gauges of the database are left out (the request metrics remain).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from fabriek.domain.access.tracks import AccessConfig
from fabriek.domain.job_states import JobState
from fabriek.domain.reason_classes import PREFIX_CHARS, reason_class
from fabriek.services.access.allocations import usage
from fabriek.services.energy.site_power import run_it_kw
from fabriek.store.tables import (
    AllocationRow,
    JobEventRow,
    JobRow,
    NodeGroupRow,
    NotificationRow,
    SiteHarvestRow,
    SiteRow,
    SupportMailRow,
)
from fabriek.store.tables.leadership import LeaseRow

log = logging.getLogger("fabriek.metrics")

# A job not yet given a site waits in Fabriek's own queue, for any site that can run it.
UNPLACED = "unplaced"
QUEUED_STATES = (JobState.PENDING.value, JobState.STARTING.value, JobState.RUNNING.value)
# An allocation with less than this share of its GPU-hours left is counted as running low.
LOW_SHARE = 0.10
# The reason the submission writes; the scheduler replaces it at its first look.
NOT_YET_SCHEDULED = "queued"
SECONDS_PER_HOUR = 3600.0


@dataclass
class Sample:
    """One family's name, help, labels and samples, built up as the queries are read."""

    name: str
    help: str
    labels: tuple[str, ...] = ()
    values: dict[tuple[str, ...], float] = field(default_factory=dict)

    def add(self, key: tuple[str, ...], value: float) -> None:
        self.values[key] = self.values.get(key, 0.0) + value

    def family(self) -> GaugeMetricFamily:
        out = GaugeMetricFamily(self.name, self.help, labels=list(self.labels))
        for key, value in sorted(self.values.items()):
            out.add_metric(list(key), value)
        return out


class FactoryCollector:
    """A prometheus_client collector: the factory's gauges, read at each scrape."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Callable[[], datetime],
        access: AccessConfig,
        engine_kind: Callable[[str], str] | None = None,
    ) -> None:
        """`engine_kind(site)`: the engine the sites file binds a site to (the store's
        word where not given)."""
        self.sessions = sessions
        self.clock = clock
        self.access = access
        self.engine_kind = engine_kind

    def collect(self) -> Iterator[Metric]:
        """The gauges; the database's are left out (and `scrape_ok` is 0) if it fails."""
        began = time.perf_counter()
        families: list[Sample] = []
        ok = 1.0
        try:
            with self.sessions() as session:
                families = read_gauges(session, self.clock(), self.access, self.engine_kind)
        except Exception:  # a scrape must answer; the log and the gauge say what failed
            log.exception("reading the factory's metrics from the database failed")
            ok, families = 0.0, []
        for sample in families:
            yield sample.family()
        scrape_ok = GaugeMetricFamily(
            "fabriek_factory_scrape_ok", "Whether this scrape could read the factory's database"
        )
        scrape_ok.add_metric([], ok)
        yield scrape_ok
        took = GaugeMetricFamily(
            "fabriek_factory_scrape_duration_seconds",
            "Time this scrape took to read the factory's gauges from the database",
        )
        took.add_metric([], time.perf_counter() - began)
        yield took


def read_gauges(
    session: Session,
    now: datetime,
    access: AccessConfig,
    engine_kind: Callable[[str], str] | None = None,
) -> list[Sample]:
    """Every database gauge at `now`: a few aggregate queries, none per job."""
    names = {i: n for i, n in session.execute(select(SiteRow.id, SiteRow.name))}
    return [
        *_sites(session, engine_kind),
        *_jobs(session, names),
        _lag(session, now),
        *_power(session, names),
        *_allocations(session, now, access),
        *_mail(session, now),
        *_harvest(session, now),
        *_leases(session, now),
    ]


def _sites(session: Session, engine_kind: Callable[[str], str] | None) -> list[Sample]:
    info = Sample(
        "fabriek_site_info", "A site and the kind of engine that runs its jobs", ("site", "engine")
    )
    gpus = Sample("fabriek_site_gpus", "GPUs a site has, from its node groups", ("site",))
    for name, engine, total in session.execute(
        select(SiteRow.name, SiteRow.engine,
               func.coalesce(func.sum(NodeGroupRow.count * NodeGroupRow.gpus_per_node), 0))
        .outerjoin(NodeGroupRow, NodeGroupRow.site_id == SiteRow.id)
        .group_by(SiteRow.id, SiteRow.name, SiteRow.engine)
    ):  # fmt: skip
        info.add((name, engine_kind(name) if engine_kind else engine), 1.0)
        gpus.add((name,), float(total or 0))
    return [info, gpus]


def _jobs(session: Session, names: dict[int, str]) -> list[Sample]:
    """Jobs and their GPUs by site and state, and waiting jobs by site and reason class.

    One grouped query: a reason is read only as far as its class needs (its first
    `PREFIX_CHARS` characters), so the groups stay few however many jobs there are."""
    jobs = Sample(
        "fabriek_jobs",
        "Jobs pending, starting and running, by site (unplaced: in Fabriek's own queue)",
        ("site", "state"),
    )
    gpus = Sample(
        "fabriek_job_gpus",
        "GPUs asked for by jobs pending, starting and running",
        ("site", "state"),
    )
    waiting = Sample(
        "fabriek_jobs_waiting",
        "Jobs waiting, by site and the class of their reason (pending in Fabriek's queue, "
        "or starting but queued on the site's cluster)",
        ("site", "reason"),
    )
    # Every site's states shown, 0 included, so that a graph has no gaps.
    for sample in (jobs, gpus):
        sample.add((UNPLACED, JobState.PENDING.value), 0.0)
        for site in names.values():
            sample.add((site, JobState.STARTING.value), 0.0)
            sample.add((site, JobState.RUNNING.value), 0.0)
    prefix = func.substr(JobRow.reason, 1, PREFIX_CHARS)
    for site_id, state, head, count, asked in session.execute(
        select(JobRow.site_id, JobRow.state, prefix, func.count(), func.sum(JobRow.gpus))
        .where(JobRow.state.in_(QUEUED_STATES))
        .group_by(JobRow.site_id, JobRow.state, prefix)
    ):  # fmt: skip
        site = names.get(site_id, UNPLACED) if site_id is not None else UNPLACED
        jobs.add((site, state), float(count))
        gpus.add((site, state), float(asked or 0))
        cls = reason_class(head)
        if state == JobState.PENDING.value or cls == "QueuedOnCluster":
            waiting.add((site, cls), float(count))
    return [jobs, gpus, waiting]


def _lag(session: Session, now: datetime) -> Sample:
    """How far the dispatcher is behind: the oldest job submitted that it has not yet
    looked at, or placed and not yet handed to its site's engine."""
    lag = Sample(
        "fabriek_dispatch_lag_seconds",
        "Age of the oldest job the dispatcher has not yet scheduled, or placed but not yet "
        "handed to its engine (0: none)",
    )
    oldest: list[datetime] = []
    queued = session.scalar(
        select(func.min(JobRow.submitted_at)).where(
            JobRow.state == JobState.PENDING.value, JobRow.reason == NOT_YET_SCHEDULED
        )
    )
    if queued is not None:
        oldest.append(queued)
    # Placed but not handed over: since it was placed (its last move to STARTING).
    placed = (
        select(func.max(JobEventRow.at).label("at"))
        .join(JobRow, JobRow.id == JobEventRow.job_id)
        .where(
            JobRow.state == JobState.STARTING.value,
            JobRow.handle.is_(None),
            JobEventRow.to_state == JobState.STARTING.value,
        )
        .group_by(JobEventRow.job_id)
        .subquery()
    )
    if (since := session.scalar(select(func.min(placed.c.at)))) is not None:
        oldest.append(since)
    ages = [(now - _aware(t, now)).total_seconds() for t in oldest]
    lag.add((), max([0.0, *ages]))
    return lag


def _power(session: Session, names: dict[int, str]) -> list[Sample]:
    """Modelled power of the jobs running at each site, beside its grid connection's limit."""
    it = Sample(
        "fabriek_site_it_power_watts",
        "Modelled IT power of the jobs running at a site (GPUs and CPU cores)",
        ("site",),
    )
    grid = Sample(
        "fabriek_site_grid_power_watts",
        "Modelled power a site draws from the grid for its running jobs: IT power x PUE",
        ("site",),
    )
    limit = Sample(
        "fabriek_site_grid_limit_watts",
        "A site's grid connection limit (sites that declare one)",
        ("site",),
    )
    pue: dict[int, float] = {}
    for site_id, site_pue, limit_kw in session.execute(
        select(SiteRow.id, SiteRow.pue, SiteRow.grid_limit_kw)
    ):
        pue[site_id] = site_pue or 1.0
        it.add((names[site_id],), 0.0)
        grid.add((names[site_id],), 0.0)
        if limit_kw is not None:
            limit.add((names[site_id],), limit_kw * 1000.0)
    # The power model is linear in GPUs and cores: one sum per site and GPU type will do.
    for at_site, gpu_type, gpus, cpus in session.execute(
        select(JobRow.site_id, JobRow.placed_gpu_type, func.sum(JobRow.gpus), func.sum(JobRow.cpus))
        .where(JobRow.state == JobState.RUNNING.value, JobRow.site_id.is_not(None))
        .group_by(JobRow.site_id, JobRow.placed_gpu_type)
    ):  # fmt: skip
        if at_site is None or at_site not in names:
            continue
        watts = run_it_kw(int(gpus or 0), gpu_type, int(cpus or 0)) * 1000.0
        it.add((names[at_site],), watts)
        grid.add((names[at_site],), watts * pue.get(at_site, 1.0))
    return [it, grid, limit]


def _allocations(session: Session, now: datetime, access: AccessConfig) -> list[Sample]:
    """Budgets of the allocations active now, summed: no label per allocation or project."""
    active = list(
        session.scalars(
            select(AllocationRow.id).where(
                AllocationRow.starts_at <= now,
                AllocationRow.ends_at > now,
                AllocationRow.suspended_at.is_(None),
            )
        )
    )
    budgets = usage(session, now, access, active) if active else {}
    count = Sample("fabriek_allocations_active", "Allocations active now (not suspended)")
    left = Sample(
        "fabriek_allocations_remaining_gpu_seconds",
        "GPU time (normalised GPU-hours x 3600) left in the active allocations, summed, after "
        "what running jobs have used and may still use",
    )
    awarded = Sample(
        "fabriek_allocations_awarded_gpu_seconds",
        "GPU time (normalised GPU-hours x 3600) awarded to the active allocations, summed",
    )
    low = Sample(
        "fabriek_allocations_low",
        f"Active allocations with less than {LOW_SHARE:.0%} of their GPU-hours left",
    )
    count.add((), float(len(budgets)))
    left.add((), 0.0)
    awarded.add((), 0.0)
    low.add((), 0.0)
    for found in budgets.values():
        budget = found.budget
        remaining = max(0.0, budget.remaining.value)
        # Prometheus' base unit is the second: GPU-hours x 3600 (a dashboard divides back).
        left.add((), remaining * SECONDS_PER_HOUR)
        awarded.add((), budget.awarded.value * SECONDS_PER_HOUR)
        if budget.awarded.value <= 0 or remaining < LOW_SHARE * budget.awarded.value:
            low.add((), 1.0)
    return [count, left, awarded, low]


def _mail(session: Session, now: datetime) -> list[Sample]:
    """Outgoing mail not yet sent: the support centre's outbox and notifications."""
    queued = Sample("fabriek_mail_queued", "E-mail waiting to be sent, by queue", ("queue",))
    oldest = Sample(
        "fabriek_mail_oldest_queued_age_seconds",
        "Age of the oldest e-mail waiting to be sent, by queue (0: none)",
        ("queue",),
    )
    failed = Sample(
        "fabriek_mail_failed",
        "Support e-mail the mail server refused for good (kept with its error)",
        ("queue",),
    )
    queries = {
        "support": select(func.count(), func.min(SupportMailRow.created_at)).where(
            SupportMailRow.sent_at.is_(None), SupportMailRow.failed_at.is_(None)
        ),
        "notifications": select(func.count(), func.min(NotificationRow.created_at)).where(
            NotificationRow.emailed_at.is_(None)
        ),
    }
    for queue, query in queries.items():
        n, first = session.execute(query).one()
        queued.add((queue,), float(n or 0))
        age = (now - _aware(first, now)).total_seconds() if first is not None else 0.0
        oldest.add((queue,), max(0.0, age))
    given_up = session.scalar(
        select(func.count())
        .select_from(SupportMailRow)
        .where(SupportMailRow.failed_at.is_not(None))
    )
    failed.add(("support",), float(given_up or 0))
    return [queued, oldest, failed]


def _harvest(session: Session, now: datetime) -> list[Sample]:
    """How far each Slurm site's accounting is read into the ledger."""
    lag = Sample(
        "fabriek_harvest_lag_seconds",
        "How far behind now a site's Slurm accounting has been read into the ledger",
        ("site",),
    )
    last = Sample(
        "fabriek_harvest_last_run_timestamp_seconds",
        "When a site's Slurm accounting was last read",
        ("site",),
    )
    for site, through, last_run in session.execute(
        select(SiteRow.name, SiteHarvestRow.through, SiteHarvestRow.last_run_at).join(
            SiteRow, SiteRow.id == SiteHarvestRow.site_id
        )
    ):
        if through is not None:
            lag.add((site,), max(0.0, (now - _aware(through, now)).total_seconds()))
        if last_run is not None:
            last.add((site,), _aware(last_run, now).timestamp())
    return [lag, last]


def _leases(session: Session, now: datetime) -> list[Sample]:
    """The singleton roles' leases (the dispatcher, the housekeeping): any server can tell
    from the database whether the leader still renews its lease."""
    age = Sample(
        "fabriek_lease_renewed_age_seconds",
        "Seconds since the holder of a role's lease last renewed it",
        ("role",),
    )
    epoch = Sample(
        "fabriek_lease_epoch", "A role's lease epoch: it grows at each change of holder", ("role",)
    )
    for role, renewed, number in session.execute(
        select(LeaseRow.role, LeaseRow.renewed_at, LeaseRow.epoch)
    ):
        age.add((role,), max(0.0, (now - _aware(renewed, now)).total_seconds()))
        epoch.add((role,), float(number))
    return [age, epoch]


def _aware(at: datetime, now: datetime) -> datetime:
    """A stored time in `now`'s zone (SQLite hands back naive UTC times)."""
    return at.replace(tzinfo=now.tzinfo) if at.tzinfo is None and now.tzinfo else at
