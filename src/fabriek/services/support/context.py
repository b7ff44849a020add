"""What a ticket is about (one of the author's jobs, proposals or datasets, or a project) and
the context it carries when the author consents: the job's state, the last lines of its
output and its budget, the proposal's or the dataset's state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fabriek.domain.access.tracks import AccessConfig
from fabriek.domain.errors import Forbidden, InvalidInput, NotFound
from fabriek.domain.inputs import is_id
from fabriek.domain.roles import Principal
from fabriek.domain.support.shapes import (
    BudgetContext,
    DatasetContext,
    JobContext,
    ProposalContext,
    TicketContext,
)
from fabriek.domain.support.tickets import About, AboutKind, parse_about
from fabriek.engines.base import LogStream
from fabriek.services.access.allocations import budgets
from fabriek.services.identity.projects import may_see_project
from fabriek.services.jobs.dispatch import Dispatcher
from fabriek.services.jobs.output import read_tail
from fabriek.store.tables import (
    AllocationRow,
    CallRow,
    DatasetRow,
    DatasetVersionRow,
    JobRow,
    ProjectRow,
    ProposalRow,
    SiteRow,
)

# The last lines of a job's output that travel with a ticket (each stream), and how much of
# the output's end is read to find them.
LOG_LINES = 20
_LOG_TAIL_BYTES = 8192


@dataclass(frozen=True)
class Subject:
    """The object a ticket is about, found and checked: its project and what to attach."""

    about: About
    project_id: int
    project: str
    context: Callable[[], TicketContext]


def require_own(session: Session, who: Principal, what: str, project_id: int, project: str) -> None:
    """The caller must be a member of the object's project; one who cannot see the project
    is told it does not exist, one who can (their hub's staff) that it is not theirs."""
    if who.in_project(project_id):
        return
    if not may_see_project(session, who, project_id):
        raise NotFound(*what.split(" ", 1))
    raise Forbidden(
        f"{what} belongs to project {project}, which you are not a member of: open a ticket "
        "about your own projects' jobs, proposals and datasets"
    )


def _lines(data: bytes) -> list[str]:
    text = data.decode("utf-8", errors="replace")
    return [line.rstrip() for line in text.splitlines() if line.strip()][-LOG_LINES:]


def job_subject(
    session: Session,
    who: Principal,
    about: About,
    access: AccessConfig,
    dispatcher: Dispatcher | None,
    now: datetime,
) -> Subject:
    job_id = int(about.ref)
    found = session.execute(
        select(JobRow, ProjectRow.name, SiteRow.name)
        .join(ProjectRow, ProjectRow.id == JobRow.project_id)
        .outerjoin(SiteRow, SiteRow.id == JobRow.site_id)
        .where(JobRow.id == job_id)
    ).first()
    if found is None:
        raise NotFound("job", job_id)
    job, project, site = found
    require_own(session, who, f"job {job_id}", job.project_id, project)

    def context() -> TicketContext:
        tails: dict[LogStream, list[str]] = {}
        for stream in LogStream:
            tails[stream] = []
            if dispatcher is not None:
                _, data, _ = read_tail(session, who, job_id, stream, _LOG_TAIL_BYTES, dispatcher)
                tails[stream] = _lines(data)
        return TicketContext(
            captured_at=now,
            job=JobContext(
                id=job.id, name=job.name, project=project, state=job.state, reason=job.reason,
                site=site, exit_code=job.exit_code, gpus=job.gpus,
                gpu_type=job.placed_gpu_type or job.gpu_type, submitted_at=job.submitted_at,
                started_at=job.started_at, ended_at=job.ended_at,
            ),
            log_lines=tails[LogStream.STDOUT],
            error_lines=tails[LogStream.STDERR],
            budget=_budget(session, job.allocation_id, job.project_id, access, now),
        )  # fmt: skip

    return Subject(about, job.project_id, project, context)


def _budget(
    session: Session,
    allocation_id: int | None,
    project_id: int,
    access: AccessConfig,
    now: datetime,
) -> BudgetContext | None:
    """The allocation the job was charged to; for a job that never started, the project's
    current one (active, ending first)."""
    if allocation_id is not None:
        row = session.get(AllocationRow, allocation_id)
    else:
        row = session.scalars(
            select(AllocationRow)
            .where(
                AllocationRow.project_id == project_id,
                AllocationRow.starts_at <= now,
                AllocationRow.ends_at > now,
            )
            .order_by(AllocationRow.ends_at, AllocationRow.id)
        ).first()
    if row is None:
        return None
    budget = budgets(session, now, access, [row.id])[row.id]
    return BudgetContext(
        allocation_id=row.id,
        track=row.track,
        awarded_gpu_hours=round(budget.awarded.value, 3),
        consumed_gpu_hours=round(budget.consumed.value, 3),
        committed_gpu_hours=round(budget.committed.value, 3),
        remaining_gpu_hours=round(budget.remaining.value, 3),
        ends_at=row.ends_at,
    )


def proposal_subject(session: Session, who: Principal, about: About, now: datetime) -> Subject:
    proposal_id = int(about.ref)
    found = session.execute(
        select(ProposalRow, ProjectRow.name, CallRow.code, CallRow.track)
        .join(ProjectRow, ProjectRow.id == ProposalRow.project_id)
        .join(CallRow, CallRow.id == ProposalRow.call_id)
        .where(ProposalRow.id == proposal_id)
    ).first()
    if found is None:
        raise NotFound("proposal", proposal_id)
    proposal, project, call, track = found
    require_own(session, who, f"proposal {proposal_id}", proposal.project_id, project)

    def context() -> TicketContext:
        return TicketContext(
            captured_at=now,
            proposal=ProposalContext(
                id=proposal.id, title=proposal.title, state=proposal.state, call=call,
                track=track, submitted_at=proposal.submitted_at, decided_at=proposal.decided_at,
            ),
        )  # fmt: skip

    return Subject(about, proposal.project_id, project, context)


def dataset_subject(session: Session, who: Principal, about: About, now: datetime) -> Subject:
    project_name, name = about.ref.split("/", 1)
    found = session.execute(
        select(DatasetRow, ProjectRow.name)
        .join(ProjectRow, ProjectRow.id == DatasetRow.project_id)
        .where(ProjectRow.name == project_name, DatasetRow.name == name)
    ).first()
    if found is None:
        raise NotFound("dataset", about.ref)
    dataset, project = found
    require_own(session, who, f"dataset {about.ref}", dataset.project_id, project)

    def context() -> TicketContext:
        versions = session.scalar(
            select(func.count()).where(DatasetVersionRow.dataset_id == dataset.id)
        )
        return TicketContext(
            captured_at=now,
            dataset=DatasetContext(
                project=project, name=dataset.name, classification=dataset.classification,
                residency=dataset.residency, versions=versions or 0,
            ),
        )  # fmt: skip

    return Subject(about, dataset.project_id, project, context)


def project_ref(session: Session, who: Principal, ref: str) -> tuple[int, str]:
    query = select(ProjectRow.id, ProjectRow.name)
    query = (
        query.where(ProjectRow.id == int(ref))
        if is_id(ref)
        else query.where(ProjectRow.name == ref)
    )
    found = session.execute(query).first()
    if found is None:
        raise NotFound("project", ref)
    project_id, name = found
    require_own(session, who, f"project {name}", project_id, name)
    return project_id, name


def subject_of(
    session: Session,
    who: Principal,
    about_text: str,
    access: AccessConfig,
    dispatcher: Dispatcher | None,
    now: datetime,
) -> Subject:
    """What a new ticket is about (`job:42`, `proposal:7`, `dataset:PROJECT/NAME`), found and
    checked to be the caller's own."""
    try:
        about = parse_about(about_text)
    except ValueError as bad:
        raise InvalidInput.on("about", str(bad)) from None
    if about.kind is AboutKind.JOB:
        return job_subject(session, who, about, access, dispatcher, now)
    if about.kind is AboutKind.PROPOSAL:
        return proposal_subject(session, who, about, now)
    return dataset_subject(session, who, about, now)
