"""Looking at jobs: list, get, events, and asking to cancel; each under the one rule of who may
see a project's jobs.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import Session

from fabriek.domain.errors import Forbidden, NotFound
from fabriek.domain.job_states import ACTIVE_STATES, TERMINAL_STATES, JobState
from fabriek.domain.jobs import Job, JobEvent
from fabriek.domain.roles import Principal, Role
from fabriek.services.identity.projects import visible_projects
from fabriek.services.jobs.states import transition
from fabriek.services.jobs.views import job_fields, with_models
from fabriek.services.paging import Page, PageRequest, count_all
from fabriek.store.tables import (
    JobEventRow,
    JobRow,
    ProjectRow,
    SiteRow,
    UserRow,
)


def _visible(who: Principal) -> ColumnElement[bool]:
    """Jobs of the projects a caller may see (the projects' own rule)."""
    return visible_projects(who, JobRow.project_id)


def _query() -> Select[JobRow, str, str, str]:
    return (
        select(JobRow, ProjectRow.name, UserRow.username, SiteRow.name)
        .join(ProjectRow, ProjectRow.id == JobRow.project_id)
        .join(UserRow, UserRow.id == JobRow.user_id)
        .outerjoin(SiteRow, SiteRow.id == JobRow.site_id)
    )


def list_jobs(
    session: Session,
    who: Principal,
    page: PageRequest,
    states: list[JobState] | None = None,
    project: str | None = None,
    site: str | None = None,
    user: str | None = None,
) -> Page[Job]:
    """Newest first, like `squeue` shows the queue to its users."""
    query = _query().where(_visible(who)).order_by(JobRow.id.desc())
    if states:
        query = query.where(JobRow.state.in_([s.value for s in states]))
    if project:
        query = query.where(ProjectRow.name == project)
    if site:
        query = query.where(SiteRow.name == site)
    if user:
        query = query.where(UserRow.username == user)
    total = count_all(session, query)
    rows = session.execute(query.limit(page.limit).offset(page.offset)).all()
    items = with_models(session, [Job(**job_fields(*r)) for r in rows])
    return Page(items, total, page.limit, page.offset)


def _visible_row(
    session: Session, who: Principal, job_id: int
) -> tuple[JobRow, str, str, str | None]:
    found = session.execute(_query().where(JobRow.id == job_id, _visible(who))).first()
    if found is None:
        raise NotFound("job", job_id)
    row, project, user, site = found
    return row, project, user, site


def get_job(session: Session, who: Principal, job_id: int) -> Job:
    return with_models(session, [Job(**job_fields(*_visible_row(session, who, job_id)))])[0]


def job_events(session: Session, who: Principal, job_id: int) -> list[JobEvent]:
    _visible_row(session, who, job_id)
    rows = session.scalars(
        select(JobEventRow).where(JobEventRow.job_id == job_id).order_by(JobEventRow.id)
    )
    return [
        JobEvent(at=e.at, from_state=JobState(e.from_state) if e.from_state else None,
                 to_state=JobState(e.to_state), reason=e.reason)
        for e in rows
    ]  # fmt: skip


def request_cancel(
    session: Session, who: Principal, job_id: int, now: datetime
) -> tuple[Job, bool]:
    """Cancel a job: a waiting one at once; a started one is marked (its reason says the
    cancel is pending), and the dispatcher stops it on its cluster. Returns the job and
    whether the engine must still be told.

    Members may cancel their own jobs; the project's PI, its hub and admins any of its jobs.
    """
    row, project, user, site = _visible_row(session, who, job_id)
    if row.user_id != who.user_id and not (
        who.leads_project(row.project_id) or who.is_admin or who.has_role(Role.HUB_STAFF)
    ):
        raise Forbidden("only the job's owner, the project's PI, its hub or an admin may cancel it")
    state = JobState(row.state)
    if state in TERMINAL_STATES:
        return Job(**job_fields(row, project, user, site)), False
    if state in {JobState.PENDING, JobState.PREEMPTED}:
        row.ended_at = now
        transition(session, row, JobState.CANCELLED, f"cancelled by {who.username}", now)
        session.commit()
        return Job(**job_fields(row, project, user, site)), False
    if not row.cancel_requested:  # asked twice: the first request's time is the one kept
        row.cancel_requested = True
        session.add(JobEventRow(job_id=row.id, at=now, from_state=row.state, to_state=row.state,
                                reason=f"cancel requested by {who.username}"))  # fmt: skip
    # Until the cluster confirms, the job says so (the dispatcher keeps sending it, first
    # thing, even while the cluster does not answer).
    row.reason = (
        f"cancel requested by {who.username}: pending until "
        f"{site or 'its site'}'s cluster confirms it"
    )
    session.commit()
    return Job(**job_fields(row, project, user, site)), state in ACTIVE_STATES


def job_handle(session: Session, who: Principal, job_id: int) -> tuple[Job, str | None]:
    """A visible job and its engine handle (None until an engine has it)."""
    row, project, user, site = _visible_row(session, who, job_id)
    return Job(**job_fields(row, project, user, site)), row.handle
