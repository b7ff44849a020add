"""Loading a cycle: the waiting and running jobs, the sites and the allocations, read from the
store into a `CycleInput` (and the waiting jobs' current reasons, which applying its plan
updates where they change).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.access.tracks import AccessConfig
from fabriek.domain.capacity import SiteShape
from fabriek.domain.dataset_staging import without_unstaged
from fabriek.domain.job_states import ACTIVE_STATE_VALUES, JobState
from fabriek.domain.partners import (
    WEB_APP_HOME,
    PartnerTerms,
    abroad_terms,
    kept_home,
    without_partners,
)
from fabriek.domain.residency import ResidencyVerdict, SiteTerms
from fabriek.domain.units import GpuHours
from fabriek.scheduler import (
    Node,
    NodeShare,
    PendingJob,
    RunningJob,
    SiteState,
    Snapshot,
    site_from_groups,
)
from fabriek.scheduler.queue_index import PendingQueue
from fabriek.services.access import allocations
from fabriek.services.accounts.terms import sites_by_user
from fabriek.services.jobs import datasets as job_datasets
from fabriek.services.scheduling.plans import CycleInput, LoadedCycle
from fabriek.services.scheduling.signals import recent_run_shares, recent_usage, site_signals
from fabriek.store.tables import JobRow, OrganisationRow, ProjectRow, SiteRow, UserRow

PENDING_BATCH = 20_000


@dataclass(frozen=True, slots=True)
class WaitingJob:
    """What a cycle reads of a waiting job: the columns it decides on, not the whole row
    (loading 20,000 whole rows as ORM objects took most of a cycle)."""

    id: int
    user_id: int
    gpus: int
    time_limit_s: int
    submitted_at: datetime
    gpu_type: str | None
    preemptible: bool
    shiftable: bool
    deadline: datetime | None
    datasets: list[dict[str, Any]] | None
    web_port: int | None
    container_image: str | None
    reason: str | None


_WAITING_COLUMNS = tuple(getattr(JobRow, f.name) for f in fields(WaitingJob))


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


def _latest_start(job: WaitingJob) -> float | None:
    """A shiftable job with a deadline may start as late as its deadline less its time
    limit; any other job is not flexible (a shiftable job without a deadline has no bound
    to shift within, so it is not held)."""
    if not job.shiftable or job.deadline is None:
        return None
    return job.deadline.timestamp() - job.time_limit_s


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
    queue: PendingQueue | None = None,
) -> LoadedCycle | None:
    """Lock the active allocations and read what a cycle decides on; None when no job waits
    (then nothing else is read). With `queue` (the index a dispatcher keeps from cycle to
    cycle), the waiting jobs are brought into it and the cycle reads them from there, as
    the simulator's replays do."""
    now_s = now.timestamp()
    allocations.lock_active(session, now)
    waiting = _waiting(session, now)
    if not waiting:
        return None
    organisations: dict[str, str] = {}
    running, held, commitment = _running(session, now_s, organisations)
    pending: list[PendingJob] = []
    reasons: dict[int, str | None] = {}
    project_of: dict[int, str] = {}
    residency: dict[int, ResidencyVerdict] = {}
    kept: dict[int, str] = {}
    confinement = _Confinement.read(session, shapes, any(j.datasets for j, *_ in waiting))
    for job, project, user, org in waiting:
        organisations[project] = org
        reasons[job.id] = job.reason
        project_of[job.id] = project
        allowed, verdict, home = confinement.sites(job, project)
        if verdict is not None:
            residency[job.id] = verdict
        if home is not None:
            kept[job.id] = home
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
    if queue is not None:
        queue.sync(pending)
    snapshot = Snapshot(
        now_s=now_s,
        pending=pending if queue is None else queue,
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
    return LoadedCycle(cycle, reasons)


@dataclass(frozen=True)
class _Confinement:
    """What keeps waiting jobs to some sites: their datasets' residency, the sites that can
    stage datasets and run images, and partner factories' terms."""

    # Each site's jurisdiction, a partner's by its country (from the sites file), not what
    # its site row declares.
    terms: list[SiteTerms]
    partners: list[PartnerTerms]
    # The sites that run images (the sites file says which).
    imaging: frozenset[str]
    # The sites that cannot stage datasets (no `dataset_staging`).
    unstaged: frozenset[str]
    everywhere: frozenset[str]

    @classmethod
    def read(cls, session: Session, shapes: Sequence[SiteShape], datasets: bool) -> _Confinement:
        """The sites' rules; their residency terms are read only when a job reads `datasets`."""
        terms = job_datasets.site_terms(session) if datasets else []
        partners = [s.partner for s in shapes if s.partner is not None]
        return cls(
            abroad_terms(terms, partners),
            partners,
            frozenset(s.name for s in shapes if s.containers),
            frozenset(s.name for s in shapes if not s.stages_datasets),
            frozenset(s.name for s in shapes),
        )

    def sites(
        self, job: WaitingJob, project: str
    ) -> tuple[frozenset[str] | None, ResidencyVerdict | None, str | None]:
        """The only sites a job may use (None for any); why its datasets confine it (when
        they do); and why it is kept off partner sites (when it is). Jobs reading datasets
        may use only the sites the data allows and that can stage it; jobs in an image only
        the sites that run images; a project's jobs cross to a partner only where listed."""
        verdict = job_datasets.sites_for(job.datasets, self.terms) if job.datasets else None
        home = kept_home(project, self.partners)
        if job.web_port is not None and self.partners:
            # Its app is reached through this factory's proxy, which cannot reach a partner.
            home = {**dict.fromkeys((p.site for p in self.partners), WEB_APP_HOME), **home}
        if verdict is not None:
            verdict = without_partners(without_unstaged(verdict, self.unstaged), home)
        allowed = _job_sites(job, verdict, self.imaging)
        if not home:
            return allowed, verdict, None
        allowed = (self.everywhere if allowed is None else allowed) - frozenset(home)
        return allowed, verdict, "; ".join(home[s] for s in sorted(home))


def _job_sites(
    job: WaitingJob, verdict: ResidencyVerdict | None, imaging: frozenset[str]
) -> frozenset[str] | None:
    """The only sites a job may use, or None for any: its datasets' and, for a job in a
    container image, those that run images."""
    allowed = verdict.allowed if verdict is not None else None
    if not job.container_image:
        return allowed
    return imaging if allowed is None else allowed & imaging


def _waiting(session: Session, now: datetime) -> list[tuple[WaitingJob, str, str, str]]:
    """The jobs that may start now (at most `PENDING_BATCH`, oldest first), with their
    project, user and organisation names."""
    # Run on the session's connection: plain rows, without the ORM's loading steps (a tenth
    # of a cycle over 20,000 jobs), in the session's transaction, after its own changes.
    session.flush()
    found = session.connection().execute(
        select(*_WAITING_COLUMNS, ProjectRow.name, UserRow.username, OrganisationRow.name)
        .join(ProjectRow, ProjectRow.id == JobRow.project_id)
        .join(UserRow, UserRow.id == JobRow.user_id)
        .join(OrganisationRow, OrganisationRow.id == ProjectRow.organisation_id)
        .where(
            JobRow.state == JobState.PENDING.value,
            JobRow.earliest_start.is_(None) | (JobRow.earliest_start <= now),
        )
        .order_by(JobRow.id)
        .limit(PENDING_BATCH)
    )
    width = len(_WAITING_COLUMNS)
    return [(WaitingJob(*row[:width]), *row[width:]) for row in found]


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
        .where(JobRow.state.in_(ACTIVE_STATE_VALUES))
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
