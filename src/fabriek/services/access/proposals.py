"""Proposals on the applicant's side of their path: reading them, writing and submitting a
draft, withdrawing it, and filing the final report of the allocation it won.

Who sees a proposal: its project's members (and the hub staff who see the project), the
reviewers assigned to it, the access team and admins. A proposal the caller may not see is
'not found'. Every rule the path follows is in `fabriek.domain.access.proposals`; the access team's
steps are in `fabriek.services.access.reviewing`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from fabriek.domain.access.proposals import (
    FINAL_STATES,
    AllocationSummary,
    DecisionKind,
    FinalReportDraft,
    Proposal,
    ProposalDraft,
    ProposalState,
    Review,
    ReviewKind,
    TurnaroundOut,
    check_transition,
    final_report_due,
    months_problem,
    turnaround,
)
from fabriek.domain.access.tracks import AccessConfig, Track
from fabriek.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from fabriek.domain.inputs import is_id
from fabriek.domain.roles import Principal, Role
from fabriek.services.access.calls import call_row
from fabriek.services.access.proposal_checks import (
    call_of,
    may_run,
    member_project,
    organisation_of,
    proposal_row,
    require_eligible,
    require_no_overdue_report,
    require_open,
    require_residency,
    require_size,
    track_of,
    visible,
)
from fabriek.services.identity.projects import visible_accounts
from fabriek.services.notifications.inbox import notify, staff_with_role
from fabriek.services.paging import Page, PageRequest, fetch_page
from fabriek.services.transactions import commit
from fabriek.store.tables import (
    AllocationRow,
    CallRow,
    OrganisationRow,
    ProjectRow,
    ProposalRow,
    ReviewRow,
    StaffRoleRow,
    UserRow,
)

# --- reading --------------------------------------------------------------------------------


def to_allocation(row: AllocationRow, project: str) -> AllocationSummary:
    """The allocation as the API shows it."""
    return AllocationSummary(
        id=row.id,
        project=project,
        proposal_id=row.proposal_id,
        track=row.track,
        awarded_gpu_hours=row.gpu_hours,
        awarded_raw=dict(row.awarded),
        sites=list(row.sites),
        preemptible=row.preemptible,
        tier=row.tier,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        final_report_due=final_report_due(row.ends_at),
        final_report_at=row.final_report_at,
    )


def to_review(row: ReviewRow, title: str, reviewer: str | None) -> Review:
    """A review as the API shows it; `reviewer` None hides the reviewer's name."""
    return Review(
        id=row.id,
        proposal_id=row.proposal_id,
        proposal_title=title,
        reviewer=reviewer,
        kind=ReviewKind(row.kind),
        score=row.score,
        feasible=row.feasible,
        comment=row.comment,
        conflict=row.conflict,
        assigned_at=row.assigned_at,
        submitted_at=row.submitted_at,
    )


def _reviews_seen(
    who: Principal,
    row: ProposalRow,
    may_run: bool,
    reviews: Iterable[tuple[ReviewRow, str]],
) -> list[Review]:
    """The reviews the caller may read: all, with names, for those who run the proposal;
    a reviewer's own; and, once decided, the submitted ones without names for applicants."""
    decided = ProposalState(row.state) in FINAL_STATES
    out = []
    for review, reviewer in reviews:
        if may_run or review.reviewer_id == who.user_id:
            out.append(to_review(review, row.title, reviewer))
        elif (
            decided
            and who.in_project(row.project_id)
            and review.submitted_at
            and not review.conflict
        ):
            out.append(to_review(review, row.title, None))
    return out


@dataclass(frozen=True)
class _Related:
    """What a page of proposals refers to, read in one query per kind rather than per
    proposal: calls, projects, organisations, authors, reviews and allocations."""

    calls: dict[int, CallRow]
    projects: dict[int, ProjectRow]
    orgs: dict[int, OrganisationRow]
    authors: dict[int, str]
    reviews: dict[int, list[tuple[ReviewRow, str]]]
    allocations: dict[int | None, AllocationRow]

    @classmethod
    def load(cls, session: Session, rows: Sequence[ProposalRow]) -> _Related:
        """Everything `rows` refer to."""
        ids = [r.id for r in rows]
        call_ids = {r.call_id for r in rows}
        project_ids = {r.project_id for r in rows}
        org_ids = {r.organisation_id for r in rows}
        author_ids = {r.author_id for r in rows}
        reviews: dict[int, list[tuple[ReviewRow, str]]] = {}
        for review, username in session.execute(
            select(ReviewRow, UserRow.username)
            .join(UserRow, UserRow.id == ReviewRow.reviewer_id)
            .where(ReviewRow.proposal_id.in_(ids))
            .order_by(ReviewRow.id)
        ):
            reviews.setdefault(review.proposal_id, []).append((review, username))
        return cls(
            calls={
                c.id: c for c in session.scalars(select(CallRow).where(CallRow.id.in_(call_ids)))
            },
            projects={
                p.id: p
                for p in session.scalars(select(ProjectRow).where(ProjectRow.id.in_(project_ids)))
            },
            orgs={
                o.id: o
                for o in session.scalars(
                    select(OrganisationRow).where(OrganisationRow.id.in_(org_ids))
                )
            },
            authors={
                uid: name
                for uid, name in session.execute(
                    select(UserRow.id, UserRow.username).where(UserRow.id.in_(author_ids))
                )
            },
            reviews=reviews,
            allocations={
                a.proposal_id: a
                for a in session.scalars(
                    select(AllocationRow).where(AllocationRow.proposal_id.in_(ids))
                )
            },
        )


def _turnaround_out(
    track: Track | None, call: CallRow, r: ProposalRow, now: datetime
) -> TurnaroundOut:
    """The proposal's turnaround clock at `now`; a call whose track is no longer configured
    shows no clock."""
    clock = turnaround(track, call.closes_at, r.submitted_at, r.decided_at, now) if track else None
    return TurnaroundOut(
        started_at=clock.started_at if clock else None,
        due_at=clock.due_at if clock else None,
        promised_working_days=clock.promised_working_days if clock else 0,
        used_working_days=clock.used_working_days if clock else 0,
        decided_at=r.decided_at,
        breached=clock.breached if clock else False,
    )


def _proposal(
    who: Principal, r: ProposalRow, related: _Related, access: AccessConfig, now: datetime
) -> Proposal:
    call, project = related.calls[r.call_id], related.projects[r.project_id]
    org = related.orgs[r.organisation_id]
    track = access.tracks.get(call.track)
    allocation = related.allocations.get(r.id)
    return Proposal(
        id=r.id,
        call=call.code,
        call_id=call.id,
        track=call.track,
        project=project.name,
        project_id=project.id,
        organisation=org.name,
        organisation_id=org.id,
        author=related.authors.get(r.author_id, ""),
        title=r.title,
        abstract=r.abstract,
        sector=r.sector,
        requested=dict(r.requested),
        requested_gpu_hours=r.requested_gpu_hours,
        months=r.months,
        datasets=list(r.datasets),
        ai_act=dict(r.ai_act),
        residency=r.residency,
        state=ProposalState(r.state),
        admin_check=r.admin_check,
        submitted_at=r.submitted_at,
        decided_at=r.decided_at,
        decision=DecisionKind(r.decision) if r.decision else None,
        decision_reason=r.decision_reason,
        awarded=dict(r.awarded) if r.awarded is not None else None,
        turnaround=_turnaround_out(track, call, r, now),
        breach_flagged_at=r.breach_flagged_at,
        reviews=_reviews_seen(who, r, may_run(who, track, org), related.reviews.get(r.id, [])),
        allocation=to_allocation(allocation, project.name) if allocation else None,
        created_at=r.created_at,
    )


def _assemble(
    session: Session,
    who: Principal,
    rows: Sequence[ProposalRow],
    access: AccessConfig,
    now: datetime,
) -> list[Proposal]:
    """Proposals with their call, project, organisation, author, reviews and allocation."""
    if not rows:
        return []
    related = _Related.load(session, rows)
    return [_proposal(who, r, related, access, now) for r in rows]


def proposal_out(
    session: Session, who: Principal, row: ProposalRow, access: AccessConfig, now: datetime
) -> Proposal:
    """One proposal as the caller may see it."""
    return _assemble(session, who, [row], access, now)[0]


def get_proposal(
    session: Session, who: Principal, proposal_id: int, access: AccessConfig, now: datetime
) -> Proposal:
    """One proposal with its turnaround clock and the reviews the caller may read."""
    return proposal_out(session, who, proposal_row(session, who, proposal_id), access, now)


def list_proposals(
    session: Session,
    who: Principal,
    page: PageRequest,
    access: AccessConfig,
    now: datetime,
    states: Sequence[ProposalState] | None = None,
    call: str | None = None,
    project: str | None = None,
) -> Page[Proposal]:
    """The proposals the caller may see, newest first, optionally by state, call, project."""
    query: Select[ProposalRow] = (
        select(ProposalRow).where(visible(who)).order_by(ProposalRow.id.desc())
    )
    if states:
        query = query.where(ProposalRow.state.in_([s.value for s in states]))
    if call:
        query = query.where(ProposalRow.call_id == call_row(session, call).id)
    if project:
        match = ProjectRow.id == int(project) if is_id(project) else ProjectRow.name == project
        query = query.where(ProposalRow.project_id.in_(select(ProjectRow.id).where(match)))
    rows, total = fetch_page(session, query, page)
    return Page(_assemble(session, who, rows, access, now), total, page.limit, page.offset)


def move(session: Session, row: ProposalRow, target: ProposalState) -> None:
    """Move the proposal to `target` only if nobody moved it meanwhile: a compare-and-set
    on its state, so two deciders racing cannot both award (and allocate) it."""
    current = ProposalState(row.state)
    check_transition(row.id, current, target)
    result = session.execute(
        update(ProposalRow)
        .where(ProposalRow.id == row.id, ProposalRow.state == current.value)
        .values(state=target.value)
        .execution_options(synchronize_session=False)
    )
    if int(getattr(result, "rowcount", 0) or 0) != 1:
        session.rollback()
        raise Conflict(f"proposal {row.id} changed meanwhile; look at it again")
    row.state = target.value


# --- the applicant's steps ------------------------------------------------------------------


def create_proposal(
    session: Session, who: Principal, draft: ProposalDraft, access: AccessConfig, now: datetime
) -> Proposal:
    """Write a draft proposal for one of the caller's projects to an open call. Every rule
    that can be checked now is: eligibility, size, duration, residency."""
    project = member_project(session, who, draft.project)
    call = call_row(session, draft.call)
    require_open(call, now)
    track = track_of(access, call)
    org = organisation_of(session, project.organisation_id)
    require_eligible(track, org)
    normalised = require_size(track, draft.requested, access)
    if draft.months is not None and (problem := months_problem(track, draft.months)):
        raise InvalidInput.on("months", problem)
    require_residency(session, draft.residency)
    row = ProposalRow(
        call_id=call.id,
        project_id=project.id,
        organisation_id=org.id,
        author_id=who.user_id,
        title=draft.title,
        abstract=draft.abstract,
        sector=draft.sector,
        requested=dict(draft.requested),
        requested_gpu_hours=normalised,
        months=draft.months,
        datasets=list(draft.datasets),
        ai_act=draft.ai_act.model_dump(mode="json"),
        residency=draft.residency,
        state=ProposalState.DRAFT.value,
        created_at=now,
    )
    session.add(row)
    commit(session, "the proposal clashes with another")
    return proposal_out(session, who, row, access, now)


def submit_proposal(
    session: Session, who: Principal, proposal_id: int, access: AccessConfig, now: datetime
) -> Proposal:
    """Submit a draft: the call must still be open, the rules still hold (the configuration
    may have changed), and the organisation may have no overdue final report. The
    turnaround clock starts (or waits for the cut-off) and the access team is told."""
    row = proposal_row(session, who, proposal_id)
    if not who.in_project(row.project_id):
        raise Forbidden("only the project's members may submit its proposal")
    check_transition(row.id, ProposalState(row.state), ProposalState.SUBMITTED)
    call = call_of(session, row)
    require_open(call, now)
    track = track_of(access, call)
    org = organisation_of(session, row.organisation_id)
    require_eligible(track, org)
    row.requested_gpu_hours = require_size(track, dict(row.requested), access)
    require_no_overdue_report(session, org, now)
    move(session, row, ProposalState.SUBMITTED)
    row.submitted_at = now
    notify(
        session,
        _runners(session, track, org),
        "proposal-submitted",
        f"Proposal {row.id} submitted to {call.code}: {row.title}",
        f"{org.name} asks for {row.requested_gpu_hours:,.2f} GPU-h (normalised) on the "
        f"{track.name} track; the administrative check is next.",
        now,
        link=f"/proposals/{row.id}",
    )
    commit(session, f"proposal {row.id} changed meanwhile")
    return proposal_out(session, who, row, access, now)


def withdraw_proposal(
    session: Session, who: Principal, proposal_id: int, access: AccessConfig, now: datetime
) -> Proposal:
    """Withdraw a proposal not yet decided (its project's principal investigator or its
    author). The clock stops: the moment is kept as `decided_at`, with no decision."""
    row = proposal_row(session, who, proposal_id)
    if not (who.leads_project(row.project_id) or row.author_id == who.user_id):
        raise Forbidden("only the proposal's author or its project's PI may withdraw it")
    check_transition(row.id, ProposalState(row.state), ProposalState.WITHDRAWN)
    move(session, row, ProposalState.WITHDRAWN)
    row.decided_at = now
    commit(session, f"proposal {row.id} changed meanwhile")
    return proposal_out(session, who, row, access, now)


def _runners(session: Session, track: Track, org: OrganisationRow) -> list[int]:
    """Who is told of a new proposal: the access team, and for a hub-run track the staff
    of the applicant's hub."""
    ids = staff_with_role(session, Role.ACCESS_TEAM)
    if track.run_by_hub:
        ids += session.scalars(
            select(StaffRoleRow.user_id).where(
                StaffRoleRow.role == Role.HUB_STAFF.value, StaffRoleRow.scope == org.hub
            )
        )
    return ids


# --- after the allocation ----------------------------------------------------------------------


def file_final_report(
    session: Session, who: Principal, allocation_id: int, draft: FinalReportDraft, now: datetime
) -> AllocationSummary:
    """File an allocation's final report (its project's principal investigator), which
    lifts the organisation's block on new proposals if this one was overdue."""
    # Whoever may see the allocation (the access team too) is told 403, not 404.
    found = session.execute(
        select(AllocationRow, ProjectRow.name)
        .join(ProjectRow, ProjectRow.id == AllocationRow.project_id)
        .where(AllocationRow.id == allocation_id, visible_accounts(who, AllocationRow.project_id))
    ).first()
    if found is None:
        raise NotFound("allocation", allocation_id)
    allocation, project = found
    if not who.leads_project(allocation.project_id):
        raise Forbidden(f"only the principal investigator of {project} may file its final report")
    if allocation.final_report_at is not None:
        raise Conflict(
            f"the final report of allocation {allocation.id} was filed at "
            f"{allocation.final_report_at:%Y-%m-%d %H:%M}"
        )
    allocation.final_report = draft.report
    allocation.final_report_at = now
    commit(session, f"allocation {allocation.id} changed meanwhile")
    return to_allocation(allocation, project)
