"""Allocations and their budgets: what each has consumed, committed and left, the ledger of
charges, and the allocation each project's next job is charged to.

A budget is always computed from the store, never kept as a running total: consumed is the
ledger (`charges`, one row per job run that ended) plus the time running jobs have used so
far; committed is the rest of running jobs' time limits. Nothing can drift, and a restart
loses nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from fabriek.domain.access.allocations import Allocation, AllocationDraft, Charge
from fabriek.domain.access.budgets import Budget, charge
from fabriek.domain.access.proposals import add_months, final_report_due
from fabriek.domain.access.tracks import AccessConfig
from fabriek.domain.errors import Forbidden, InvalidInput, NotFound
from fabriek.domain.inputs import is_id
from fabriek.domain.job_states import ACTIVE_STATE_VALUES
from fabriek.domain.roles import Principal, Role
from fabriek.domain.units import GpuHours
from fabriek.scheduler import Allocation as SchedulingAllocation
from fabriek.services import audit
from fabriek.services.access.origins import Origin, origins
from fabriek.services.identity.projects import visible_accounts
from fabriek.services.paging import Page, PageRequest, count_all
from fabriek.services.transactions import clash_is_conflict, commit
from fabriek.store.tables import AllocationRow, ChargeRow, JobRow, ProjectRow, SiteRow


@dataclass(frozen=True)
class Usage:
    """One allocation's budget now, with the raw GPU-hours beside the normalised ones."""

    budget: Budget
    consumed_raw: GpuHours


def _running_rows(
    session: Session, allocation_ids: Collection[int] | None
) -> list[tuple[int, int, datetime | None, int, float | None, str | None]]:
    query = select(
        JobRow.allocation_id, JobRow.gpus, JobRow.started_at, JobRow.time_limit_s,
        JobRow.charge_factor, JobRow.placed_gpu_type,
    ).where(JobRow.allocation_id.is_not(None), JobRow.state.in_(ACTIVE_STATE_VALUES))  # fmt: skip
    if allocation_ids is not None:
        query = query.where(JobRow.allocation_id.in_(list(allocation_ids)))
    return [tuple(r) for r in session.execute(query)]  # type: ignore[misc]


def usage(
    session: Session,
    now: datetime,
    access: AccessConfig,
    allocation_ids: Collection[int] | None = None,
) -> dict[int, Usage]:
    """Each allocation's budget at `now` (all allocations, or those of `allocation_ids`).
    A running job whose charge factor was not recorded is charged at its GPU type's."""
    query = select(AllocationRow.id, AllocationRow.gpu_hours)
    charged = select(
        ChargeRow.allocation_id, func.sum(ChargeRow.gpu_hours), func.sum(ChargeRow.raw_gpu_hours)
    ).group_by(ChargeRow.allocation_id)
    if allocation_ids is not None:
        ids = list(allocation_ids)
        query = query.where(AllocationRow.id.in_(ids))
        charged = charged.where(ChargeRow.allocation_id.in_(ids))
    awarded: dict[int, float] = {a: g for a, g in session.execute(query)}
    consumed: dict[int, float] = defaultdict(float)
    raw: dict[int, float] = defaultdict(float)
    committed: dict[int, float] = defaultdict(float)
    for allocation_id, normalised, plain in session.execute(charged):
        consumed[allocation_id] += normalised or 0.0
        raw[allocation_id] += plain or 0.0
    for allocation_id, gpus, started, limit, factor, gpu_type in _running_rows(
        session, allocation_ids
    ):
        rate = factor if factor is not None else access.factor(gpu_type)
        used_s = max(0.0, (now - started).total_seconds()) if started else 0.0
        # A job past its limit is about to be stopped; it never commits less than nothing.
        consumed[allocation_id] += charge(gpus, used_s, rate).value
        raw[allocation_id] += charge(gpus, used_s, 1.0).value
        committed[allocation_id] += charge(gpus, max(0.0, limit - used_s), rate).value
    return {
        a: Usage(
            Budget(GpuHours(total), GpuHours(consumed[a]), GpuHours(committed[a])),
            GpuHours(raw[a]),
        )
        for a, total in awarded.items()
    }


def budgets(
    session: Session,
    now: datetime,
    access: AccessConfig,
    allocation_ids: Collection[int] | None = None,
) -> dict[int, Budget]:
    """Each allocation's `Budget` at `now`, in normalised GPU-hours."""
    return {a: u.budget for a, u in usage(session, now, access, allocation_ids).items()}


def record_charge(session: Session, job: JobRow, now: datetime) -> None:
    """Write the ledger line for a job run that stopped (finished, failed, cancelled, lost or
    preempted), in the transaction that records the stop: a run is charged exactly once."""
    if job.allocation_id is None or job.started_at is None:
        return
    ended = job.ended_at if job.ended_at is not None and job.ended_at >= job.started_at else now
    seconds = max(0.0, (ended - job.started_at).total_seconds())
    factor = job.charge_factor if job.charge_factor is not None else 1.0
    session.add(
        ChargeRow(
            allocation_id=job.allocation_id,
            job_id=job.id,
            gpus=job.gpus,
            gpu_type=job.placed_gpu_type,
            started_at=job.started_at,
            ended_at=ended,
            raw_gpu_hours=charge(job.gpus, seconds, 1.0).value,
            factor=factor,
            gpu_hours=charge(job.gpus, seconds, factor).value,
        )
    )


# -- the scheduler's view ------------------------------------------------------------------------


@dataclass(frozen=True)
class CycleAllocations:
    """What a scheduling cycle needs of allocations: one per project with the GPU-hours its
    jobs may still commit, and which allocation row a started job is charged to."""

    allocations: dict[str, SchedulingAllocation]
    charged_to: dict[str, int]


def for_cycle(
    session: Session,
    now: datetime,
    access: AccessConfig,
    projects: Iterable[str],
    organisations: dict[str, str],
    running_commitment: dict[str, float],
) -> CycleAllocations:
    """Each project's current allocation: the active one that ends first and still has
    GPU-hours left (what expires first is spent first), else the one that ends first (so
    the wait reason says the budget is spent). `running_commitment` is what the scheduler
    will itself subtract for each project's running jobs; it is added back so the
    scheduler's arithmetic lands on the chosen allocation's own remainder.
    """
    names = list(projects)
    rows = session.execute(
        select(AllocationRow, ProjectRow.name)
        .join(ProjectRow, ProjectRow.id == AllocationRow.project_id)
        .where(
            ProjectRow.name.in_(names),
            AllocationRow.starts_at <= now,
            AllocationRow.ends_at > now,
            # A suspended allocation or project pays for nothing new: its jobs wait.
            AllocationRow.suspended_at.is_(None),
            ProjectRow.suspended_at.is_(None),
        )
        .order_by(AllocationRow.id)
    ).all()
    if not rows:
        return CycleAllocations({}, {})
    found = usage(session, now, access, [row.id for row, _ in rows])
    by_project: dict[str, list[AllocationRow]] = defaultdict(list)
    for row, project in rows:
        by_project[project].append(row)
    allocations: dict[str, SchedulingAllocation] = {}
    charged_to: dict[str, int] = {}
    for project, candidates in by_project.items():
        candidates.sort(key=lambda r: (r.ends_at, r.id))
        chosen = next(
            (r for r in candidates if found[r.id].budget.remaining.value > 0), candidates[0]
        )
        left = found[chosen.id].budget.remaining.value + running_commitment.get(project, 0.0)
        allocations[project] = SchedulingAllocation(
            project=project,
            organisation=organisations[project],
            budget_left=GpuHours(left),
            tier=chosen.tier,
            preemptible=chosen.preemptible,
            track=chosen.track,
            sites=frozenset(chosen.sites) if chosen.sites else None,
        )
        charged_to[project] = chosen.id
    return CycleAllocations(allocations, charged_to)


def lock_active(session: Session, now: datetime) -> None:
    """Lock the active allocations for this transaction (`FOR UPDATE` on PostgreSQL; SQLite
    writes one transaction at a time anyway). A cycle takes this lock before it reads any
    job, so two cycles, in however many processes, never spend the same GPU-hours: the
    second waits for the first to commit and then reads what it started."""
    session.execute(
        select(AllocationRow.id)
        .where(AllocationRow.starts_at <= now, AllocationRow.ends_at > now)
        .order_by(AllocationRow.id)
        .with_for_update()
    ).all()


# -- use cases -------------------------------------------------------------------------------------


def _may_see_all(who: Principal) -> bool:
    return who.is_admin or who.has_role(Role.ACCESS_TEAM)


def _visible(who: Principal) -> ColumnElement[bool]:
    return visible_accounts(who, AllocationRow.project_id)


def _view(
    row: AllocationRow, project: str, found: Usage, now: datetime, origin: Origin
) -> Allocation:
    budget = found.budget
    return Allocation(
        id=row.id,
        project=project,
        track=row.track,
        proposal_id=row.proposal_id,
        awarded_gpu_hours=round(budget.awarded.value, 6),
        awarded_raw=dict(row.awarded or {}),
        consumed_gpu_hours=round(budget.consumed.value, 6),
        committed_gpu_hours=round(budget.committed.value, 6),
        remaining_gpu_hours=round(budget.remaining.value, 6),
        consumed_raw_gpu_hours=round(found.consumed_raw.value, 6),
        used_percent=round(100.0 * budget.used_fraction, 2),
        sites=list(row.sites or []),
        preemptible=row.preemptible,
        tier=row.tier,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        active=row.starts_at <= now < row.ends_at,
        final_report_due=final_report_due(row.ends_at),
        final_report_filed=row.final_report_at is not None,
        source=origin.source,
        turnaround=origin.turnaround,
    )


def list_allocations(
    session: Session,
    who: Principal,
    now: datetime,
    access: AccessConfig,
    page: PageRequest,
    project: str | None = None,
    active: bool | None = None,
) -> Page[Allocation]:
    """The allocations the caller may see (their projects'; all for the access team),
    newest first, with each one's budget now."""
    query = (
        select(AllocationRow, ProjectRow.name)
        .join(ProjectRow, ProjectRow.id == AllocationRow.project_id)
        .where(_visible(who))
    )
    if project is not None:
        query = query.where(
            ProjectRow.id == int(project) if is_id(project) else ProjectRow.name == project
        )
    if active is not None:
        running = (AllocationRow.starts_at <= now) & (AllocationRow.ends_at > now)
        query = query.where(running if active else ~running)
    total = count_all(session, query)
    rows = session.execute(
        query.order_by(AllocationRow.id.desc()).limit(page.limit).offset(page.offset)
    ).all()
    found = usage(session, now, access, [r.id for r, _ in rows])
    came = origins(session, [r for r, _ in rows])
    items = [_view(r, name, found[r.id], now, came[r.id]) for r, name in rows]
    return Page(items, total, page.limit, page.offset)


def _allocation_row(
    session: Session, who: Principal, allocation_id: int
) -> tuple[AllocationRow, str]:
    found = session.execute(
        select(AllocationRow, ProjectRow.name)
        .join(ProjectRow, ProjectRow.id == AllocationRow.project_id)
        .where(AllocationRow.id == allocation_id, _visible(who))
    ).first()
    if found is None:
        raise NotFound("allocation", allocation_id)
    return found[0], found[1]


def get_allocation(
    session: Session, who: Principal, now: datetime, access: AccessConfig, allocation_id: int
) -> Allocation:
    """One allocation the caller may see, with its budget now."""
    row, project = _allocation_row(session, who, allocation_id)
    found = usage(session, now, access, [row.id])[row.id]
    return _view(row, project, found, now, origins(session, [row])[row.id])


def list_charges(session: Session, who: Principal, allocation_id: int) -> list[Charge]:
    """The ledger of an allocation: every job run charged to it, oldest first."""
    row, _ = _allocation_row(session, who, allocation_id)
    charges = session.scalars(
        select(ChargeRow).where(ChargeRow.allocation_id == row.id).order_by(ChargeRow.id)
    )
    return [
        Charge(
            job_id=c.job_id, gpus=c.gpus, gpu_type=c.gpu_type, started_at=c.started_at,
            ended_at=c.ended_at, raw_gpu_hours=c.raw_gpu_hours, factor=c.factor,
            gpu_hours=c.gpu_hours,
        )
        for c in charges
    ]  # fmt: skip


def create_allocation(
    session: Session, who: Principal, now: datetime, access: AccessConfig, draft: AllocationDraft
) -> Allocation:
    """Grant an allocation directly (the access team or an admin): a pilot, a transfer,
    or a grant decided outside Fabriek. Awards from proposals make their own."""
    if not _may_see_all(who):
        raise Forbidden("only the access team or an admin may grant an allocation directly")
    ref = draft.project
    project = session.scalar(
        select(ProjectRow).where(
            ProjectRow.id == int(ref) if is_id(ref) else ProjectRow.name == ref
        )
    )
    if project is None:
        raise NotFound("project", ref)
    track = access.track(draft.track)
    for gpu_type, hours in draft.gpu_hours.items():
        if gpu_type != "any" and gpu_type not in access.gpu_hour_factors:
            known = ", ".join([*access.gpu_hour_factors, "any"])
            raise InvalidInput.on("gpu_hours", f"no GPU type {gpu_type!r}; known: {known}")
        if hours <= 0:
            raise InvalidInput.on("gpu_hours", f"{gpu_type}: give more than zero GPU-hours")
    known_sites = set(session.scalars(select(SiteRow.name)))
    unknown = sorted(set(draft.sites) - known_sites)
    if unknown:
        raise InvalidInput.on(
            "sites", f"no site {', '.join(unknown)}; known: {', '.join(sorted(known_sites))}"
        )
    starts = draft.starts_at or now
    ends = draft.ends_at or add_months(starts, min(track.durations_months))
    if ends <= starts:
        raise InvalidInput.on("ends_at", "an allocation must end after it starts")
    row = AllocationRow(
        project_id=project.id,
        proposal_id=None,
        track=track.code,
        gpu_hours=access.normalised(draft.gpu_hours).value,
        awarded=dict(draft.gpu_hours),
        sites=sorted(set(draft.sites)),
        preemptible=track.preemptible,
        tier=track.tier,
        starts_at=starts,
        ends_at=ends,
        created_at=now,
    )
    session.add(row)
    clash = "the allocation clashes with another change; try again"
    with clash_is_conflict(session, clash):
        session.flush()  # the allocation's number, for its audit entry
    audit.record_admin(
        session, who, now, "allocation-grant", project_id=project.id,
        target=f"allocation {row.id}", track=row.track, awarded=row.awarded, sites=row.sites,
        starts_at=starts, ends_at=ends,
    )  # fmt: skip
    commit(session, clash)
    found = usage(session, now, access, [row.id])[row.id]
    return _view(row, project.name, found, now, origins(session, [row])[row.id])


def change_allocation(
    session: Session,
    who: Principal,
    now: datetime,
    access: AccessConfig,
    allocation_id: int,
    gpu_hours: dict[str, float] | None = None,
    ends_at: datetime | None = None,
) -> Allocation:
    """Change a granted allocation's GPU-hours or end date (the access team or an admin):
    a grant changed where it was decided (the federation platform's update order). Ending
    it now stops new jobs being charged to it; its ledger stays. Audited, old and new."""
    if not _may_see_all(who):
        raise Forbidden("only the access team or an admin may change an allocation")
    row, project = _allocation_row(session, who, allocation_id)
    before: dict[str, object] = {"awarded": dict(row.awarded or {}), "ends_at": row.ends_at}
    if gpu_hours is not None:
        for gpu_type, hours in gpu_hours.items():
            if gpu_type != "any" and gpu_type not in access.gpu_hour_factors:
                known = ", ".join([*access.gpu_hour_factors, "any"])
                raise InvalidInput.on("gpu_hours", f"no GPU type {gpu_type!r}; known: {known}")
            if hours <= 0:
                raise InvalidInput.on("gpu_hours", f"{gpu_type}: give more than zero GPU-hours")
        row.awarded = dict(gpu_hours)
        row.gpu_hours = access.normalised(gpu_hours).value
    if ends_at is not None:
        if ends_at <= row.starts_at:
            raise InvalidInput.on("ends_at", "an allocation must end after it starts")
        row.ends_at = ends_at
    audit.record_admin(
        session, who, now, "allocation-change", project_id=row.project_id,
        target=f"allocation {row.id}", before=before,
        after={"awarded": row.awarded, "ends_at": row.ends_at},
    )  # fmt: skip
    commit(session, "the allocation clashes with another change; try again")
    found = usage(session, now, access, [row.id])[row.id]
    return _view(row, project, found, now, origins(session, [row])[row.id])
