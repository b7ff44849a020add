"""Proposals on their path: draft, submission, administrative check, reviews, decision,
allocation and final report; and the turnaround clock's breaches.

Who sees a proposal: its project's members (and the hub staff who see the project), the
reviewers assigned to it, the access team and admins. A proposal the caller may not see is
'not found'. Every rule the path follows is in `fabriek.domain.proposals`; this module
reads and writes the store and decides who may act.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, Select, select, true, update
from sqlalchemy.orm import Session

from fabriek.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from fabriek.domain.geography import Hub
from fabriek.domain.organisations import OrganisationKind
from fabriek.domain.proposals import (
    CLOCK_RUNNING,
    DECIDED_STATE,
    FINAL_STATES,
    RESIDENCY_ANY,
    RESIDENCY_EU,
    RESIDENCY_NL,
    AdminCheck,
    AllocationSummary,
    DecisionDraft,
    DecisionKind,
    FinalReportDraft,
    Proposal,
    ProposalDraft,
    ProposalState,
    Review,
    ReviewerAssignment,
    ReviewKind,
    ReviewSubmission,
    TurnaroundOut,
    add_months,
    allocation_months,
    call_open_problem,
    check_transition,
    conflict_of_interest,
    decision_kind,
    final_report_due,
    months_problem,
    report_overdue,
    request_problem,
    reviews_problem,
    turnaround,
)
from fabriek.domain.roles import Principal, Role
from fabriek.domain.tracks import AccessConfig, Track
from fabriek.services import audit
from fabriek.services.calls import call_row, runs_calls
from fabriek.services.notifications import notify, notify_once, staff_with_role
from fabriek.services.paging import Page, PageRequest, count_all, fetch_page
from fabriek.services.projects import visible_accounts, visible_projects
from fabriek.services.transactions import commit
from fabriek.store.tables import (
    AllocationRow,
    CallRow,
    MembershipRow,
    OrganisationRow,
    ProjectRow,
    ProposalRow,
    ReviewRow,
    SiteRow,
    StaffRoleRow,
    UserRow,
)

# The staff role a reviewer of each kind must hold.
REVIEWER_ROLE = {ReviewKind.TECHNICAL: Role.SITE_OPERATOR, ReviewKind.SCIENTIFIC: Role.REVIEWER}


# --- visibility and permission ----------------------------------------------------------------


def _visible(who: Principal) -> ColumnElement[bool]:
    """Proposals the caller may see: those of the projects they see, those they are
    assigned to review, and for the access team every submitted one (a draft is the
    applicants' own until they submit it; admins see everything)."""
    if who.is_admin:
        return true()
    assigned = ProposalRow.id.in_(
        select(ReviewRow.proposal_id).where(ReviewRow.reviewer_id == who.user_id)
    )
    seen = visible_projects(who, ProposalRow.project_id) | assigned
    if runs_calls(who):
        return seen | (ProposalRow.state != ProposalState.DRAFT.value)
    return seen


def _may_run(who: Principal, track: Track | None, organisation: OrganisationRow) -> bool:
    """Who checks, assigns reviewers to and decides a proposal: the access team and
    admins; on a hub-run track also the staff of the applicant's own hub."""
    if runs_calls(who):
        return True
    return bool(track and track.run_by_hub and organisation.hub in who.scopes(Role.HUB_STAFF))


def _require_run(who: Principal, track: Track | None, organisation: OrganisationRow) -> None:
    if not _may_run(who, track, organisation):
        extra = " or the staff of the applicant's hub" if track and track.run_by_hub else ""
        raise Forbidden(f"only the access team{extra} or an admin may do this")


def _proposal_row(session: Session, who: Principal, proposal_id: int) -> ProposalRow:
    row = session.scalars(
        select(ProposalRow).where(ProposalRow.id == proposal_id, _visible(who))
    ).first()
    if row is None:
        raise NotFound("proposal", proposal_id)
    return row


def _track_of(access: AccessConfig, call: CallRow) -> Track:
    track = access.tracks.get(call.track)
    if track is None:
        # The configuration lost a track that calls still use: say so, do not guess.
        raise Conflict(f"call {call.code} is on track {call.track!r}, no longer configured")
    return track


def _organisation(session: Session, organisation_id: int) -> OrganisationRow:
    org = session.get(OrganisationRow, organisation_id)
    if org is None:  # a foreign key makes this impossible; the type checker cannot know
        raise NotFound("organisation", organisation_id)
    return org


# --- the rules checked at draft and at submission ---------------------------------------------


def _require_open(call: CallRow, now: datetime) -> None:
    problem = call_open_problem(call.code, call.opens_at, call.closes_at, now)
    if problem:
        raise Conflict(problem)


def _require_eligible(track: Track, org: OrganisationRow) -> None:
    try:
        kind = OrganisationKind(org.kind)
        hub = Hub(org.hub)
    except ValueError:
        raise InvalidInput.on("call", f"{org.name} has an unknown kind or hub") from None
    problem = track.eligibility_problem(kind, org.country, hub)
    if problem:
        raise InvalidInput.on(
            "call", f"{org.name} ({org.kind}, {org.country}) may not apply: {problem}"
        )


def _require_size(track: Track, requested: dict[str, float], access: AccessConfig) -> float:
    problem = request_problem(requested)
    if problem:
        raise InvalidInput.on("requested", problem)
    normalised = access.normalised(requested)
    problem = track.size_problem(normalised)
    if problem:
        raise InvalidInput.on("requested", f"{problem} (normalised from {_raw(requested)})")
    return normalised.value


def _raw(hours: dict[str, float]) -> str:
    return ", ".join(f"{h:,.0f} {gpu} GPU-h" for gpu, h in sorted(hours.items()))


def _require_residency(session: Session, residency: str) -> None:
    if residency in {RESIDENCY_ANY, RESIDENCY_EU, RESIDENCY_NL}:
        return
    if session.scalars(select(SiteRow.id).where(SiteRow.name == residency)).first() is None:
        raise InvalidInput.on(
            "residency", f"use 'any', 'eu', 'nl' or a site's name; there is no site {residency!r}"
        )


def overdue_reports(session: Session, organisation_id: int, now: datetime) -> list[AllocationRow]:
    """The organisation's allocations whose final report is overdue at `now`."""
    candidates = session.scalars(
        select(AllocationRow)
        .join(ProjectRow, ProjectRow.id == AllocationRow.project_id)
        .where(
            ProjectRow.organisation_id == organisation_id,
            AllocationRow.final_report_at.is_(None),
            AllocationRow.ends_at < now,
        )
        .order_by(AllocationRow.ends_at)
    )
    return [a for a in candidates if report_overdue(a.ends_at, a.final_report_at, now)]


def _require_no_overdue_report(session: Session, org: OrganisationRow, now: datetime) -> None:
    overdue = overdue_reports(session, org.id, now)
    if overdue:
        first = overdue[0]
        raise Conflict(
            f"{org.name} has {len(overdue)} overdue final report(s) and cannot submit new "
            f"proposals until they are filed: allocation {first.id} ended "
            f"{first.ends_at:%Y-%m-%d}, its report was due {final_report_due(first.ends_at):%Y-%m-%d}"
            f" (file it with POST /api/v1/allocations/{first.id}/final-report)"
        )


def _member_project(session: Session, who: Principal, ref: str) -> ProjectRow:
    query = select(ProjectRow).where(visible_projects(who, ProjectRow.id))
    query = (
        query.where(ProjectRow.id == int(ref))
        if ref.isdigit()
        else query.where(ProjectRow.name == ref)
    )
    project = session.scalars(query).first()
    if project is None:
        raise NotFound("project", ref)
    if not who.in_project(project.id):
        raise Forbidden(f"only the members of project {project.name} may write its proposals")
    return project


# --- reading --------------------------------------------------------------------------------


def _allocation(row: AllocationRow, project: str) -> AllocationSummary:
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


def _review(row: ReviewRow, title: str, reviewer: str | None) -> Review:
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
            out.append(_review(review, row.title, reviewer))
        elif (
            decided
            and who.in_project(row.project_id)
            and review.submitted_at
            and not review.conflict
        ):
            out.append(_review(review, row.title, None))
    return out


def _assemble(
    session: Session,
    who: Principal,
    rows: Sequence[ProposalRow],
    access: AccessConfig,
    now: datetime,
) -> list[Proposal]:
    """Proposals with their call, project, organisation, author, reviews and allocation,
    read in one query per kind rather than per proposal."""
    if not rows:
        return []
    ids = [r.id for r in rows]
    calls = {
        c.id: c
        for c in session.scalars(select(CallRow).where(CallRow.id.in_({r.call_id for r in rows})))
    }
    projects = {
        p.id: p
        for p in session.scalars(
            select(ProjectRow).where(ProjectRow.id.in_({r.project_id for r in rows}))
        )
    }
    orgs = {
        o.id: o
        for o in session.scalars(
            select(OrganisationRow).where(OrganisationRow.id.in_({r.organisation_id for r in rows}))
        )
    }
    authors: dict[int, str] = {
        uid: name
        for uid, name in session.execute(
            select(UserRow.id, UserRow.username).where(UserRow.id.in_({r.author_id for r in rows}))
        )
    }
    reviews: dict[int, list[tuple[ReviewRow, str]]] = {}
    for review, username in session.execute(
        select(ReviewRow, UserRow.username)
        .join(UserRow, UserRow.id == ReviewRow.reviewer_id)
        .where(ReviewRow.proposal_id.in_(ids))
        .order_by(ReviewRow.id)
    ):
        reviews.setdefault(review.proposal_id, []).append((review, username))
    allocations = {
        a.proposal_id: a
        for a in session.scalars(select(AllocationRow).where(AllocationRow.proposal_id.in_(ids)))
    }
    out = []
    for r in rows:
        call, project, org = calls[r.call_id], projects[r.project_id], orgs[r.organisation_id]
        track = access.tracks.get(call.track)
        clock = (
            turnaround(track, call.closes_at, r.submitted_at, r.decided_at, now) if track else None
        )
        allocation = allocations.get(r.id)
        out.append(
            Proposal(
                id=r.id,
                call=call.code,
                call_id=call.id,
                track=call.track,
                project=project.name,
                project_id=project.id,
                organisation=org.name,
                organisation_id=org.id,
                author=authors.get(r.author_id, ""),
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
                turnaround=TurnaroundOut(
                    started_at=clock.started_at if clock else None,
                    due_at=clock.due_at if clock else None,
                    promised_working_days=clock.promised_working_days if clock else 0,
                    used_working_days=clock.used_working_days if clock else 0,
                    decided_at=r.decided_at,
                    breached=clock.breached if clock else False,
                ),
                breach_flagged_at=r.breach_flagged_at,
                reviews=_reviews_seen(who, r, _may_run(who, track, org), reviews.get(r.id, [])),
                allocation=_allocation(allocation, project.name) if allocation else None,
                created_at=r.created_at,
            )
        )
    return out


def _one(
    session: Session, who: Principal, row: ProposalRow, access: AccessConfig, now: datetime
) -> Proposal:
    return _assemble(session, who, [row], access, now)[0]


def get_proposal(
    session: Session, who: Principal, proposal_id: int, access: AccessConfig, now: datetime
) -> Proposal:
    """One proposal with its turnaround clock and the reviews the caller may read."""
    return _one(session, who, _proposal_row(session, who, proposal_id), access, now)


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
        select(ProposalRow).where(_visible(who)).order_by(ProposalRow.id.desc())
    )
    if states:
        query = query.where(ProposalRow.state.in_([s.value for s in states]))
    if call:
        query = query.where(ProposalRow.call_id == call_row(session, call).id)
    if project:
        match = ProjectRow.id == int(project) if project.isdigit() else ProjectRow.name == project
        query = query.where(ProposalRow.project_id.in_(select(ProjectRow.id).where(match)))
    rows, total = fetch_page(session, query, page)
    return Page(_assemble(session, who, rows, access, now), total, page.limit, page.offset)


def _move(session: Session, row: ProposalRow, target: ProposalState) -> None:
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
    project = _member_project(session, who, draft.project)
    call = call_row(session, draft.call)
    _require_open(call, now)
    track = _track_of(access, call)
    org = _organisation(session, project.organisation_id)
    _require_eligible(track, org)
    normalised = _require_size(track, draft.requested, access)
    if draft.months is not None and (problem := months_problem(track, draft.months)):
        raise InvalidInput.on("months", problem)
    _require_residency(session, draft.residency)
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
    return _one(session, who, row, access, now)


def submit_proposal(
    session: Session, who: Principal, proposal_id: int, access: AccessConfig, now: datetime
) -> Proposal:
    """Submit a draft: the call must still be open, the rules still hold (the configuration
    may have changed), and the organisation may have no overdue final report. The
    turnaround clock starts (or waits for the cut-off) and the access team is told."""
    row = _proposal_row(session, who, proposal_id)
    if not who.in_project(row.project_id):
        raise Forbidden("only the project's members may submit its proposal")
    check_transition(row.id, ProposalState(row.state), ProposalState.SUBMITTED)
    call = _call(session, row)
    _require_open(call, now)
    track = _track_of(access, call)
    org = _organisation(session, row.organisation_id)
    _require_eligible(track, org)
    row.requested_gpu_hours = _require_size(track, dict(row.requested), access)
    _require_no_overdue_report(session, org, now)
    _move(session, row, ProposalState.SUBMITTED)
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
    return _one(session, who, row, access, now)


def withdraw_proposal(
    session: Session, who: Principal, proposal_id: int, access: AccessConfig, now: datetime
) -> Proposal:
    """Withdraw a proposal not yet decided (its project's principal investigator or its
    author). The clock stops: the moment is kept as `decided_at`, with no decision."""
    row = _proposal_row(session, who, proposal_id)
    if not (who.leads_project(row.project_id) or row.author_id == who.user_id):
        raise Forbidden("only the proposal's author or its project's PI may withdraw it")
    check_transition(row.id, ProposalState(row.state), ProposalState.WITHDRAWN)
    _move(session, row, ProposalState.WITHDRAWN)
    row.decided_at = now
    commit(session, f"proposal {row.id} changed meanwhile")
    return _one(session, who, row, access, now)


def _call(session: Session, row: ProposalRow) -> CallRow:
    call = session.get(CallRow, row.call_id)
    if call is None:  # a foreign key makes this impossible
        raise NotFound("call", row.call_id)
    return call


def _members(session: Session, project_id: int) -> list[int]:
    return list(
        session.scalars(select(MembershipRow.user_id).where(MembershipRow.project_id == project_id))
    )


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


# --- the access team's steps ----------------------------------------------------------------


def _context(
    session: Session, who: Principal, proposal_id: int, access: AccessConfig
) -> tuple[ProposalRow, CallRow, Track, OrganisationRow]:
    row = _proposal_row(session, who, proposal_id)
    call = _call(session, row)
    track = _track_of(access, call)
    org = _organisation(session, row.organisation_id)
    _require_run(who, track, org)
    return row, call, track, org


def admin_check(
    session: Session,
    who: Principal,
    proposal_id: int,
    check: AdminCheck,
    access: AccessConfig,
    now: datetime,
) -> Proposal:
    """Record the administrative check: passed, the proposal goes to review; failed (with
    a note saying why), it is rejected and its members are told."""
    row, _call_row, _track, _org = _context(session, who, proposal_id, access)
    note = check.note.strip()
    if check.passed:
        check_transition(row.id, ProposalState(row.state), ProposalState.UNDER_REVIEW)
        _move(session, row, ProposalState.UNDER_REVIEW)
        row.admin_check = note or "passed"
    else:
        if not note:
            raise InvalidInput.on("note", "say why the administrative check failed")
        check_transition(row.id, ProposalState(row.state), ProposalState.REJECTED)
        _move(session, row, ProposalState.REJECTED)
        row.admin_check = note
        row.decision = DecisionKind.REJECT.value
        row.decision_reason = f"administrative check failed: {note}"
        row.decided_at = now
        row.awarded = {}
        notify(
            session,
            _members(session, row.project_id),
            "proposal-decided",
            f"Proposal {row.id} did not pass the administrative check",
            row.decision_reason,
            now,
            link=f"/proposals/{row.id}",
        )
    audit.record_admin(
        session, who, now, "proposal-admin-check", project_id=row.project_id,
        target=f"proposal {row.id}", passed=check.passed, note=note,
    )  # fmt: skip
    commit(session, f"proposal {row.id} changed meanwhile")
    return _one(session, who, row, access, now)


def _user(session: Session, username: str, field: str) -> UserRow:
    user = session.scalars(select(UserRow).where(UserRow.username == username)).first()
    if user is None:
        raise InvalidInput.on(field, f"no user named {username!r}")
    return user


def _coi(session: Session, user: UserRow, row: ProposalRow, org: OrganisationRow) -> str | None:
    projects = frozenset(
        session.scalars(select(MembershipRow.project_id).where(MembershipRow.user_id == user.id))
    )
    return conflict_of_interest(
        user.username, user.organisation_id, projects, org.id, org.name, row.project_id
    )


def assign_reviewer(
    session: Session,
    who: Principal,
    proposal_id: int,
    assignment: ReviewerAssignment,
    access: AccessConfig,
    now: datetime,
) -> Review:
    """Assign a technical reviewer (site staff) or a scientific or business reviewer (a
    reviewer) to a proposal under review. Nobody from the applicant's organisation or
    project may review it."""
    row, _call_row, _track, org = _context(session, who, proposal_id, access)
    if ProposalState(row.state) is not ProposalState.UNDER_REVIEW:
        raise Conflict(
            f"proposal {row.id} is {row.state}: reviewers are assigned once it has passed "
            "its administrative check and before the decision"
        )
    user = _user(session, assignment.reviewer, "reviewer")
    role = REVIEWER_ROLE[assignment.kind]
    holds = session.scalars(
        select(StaffRoleRow.id).where(
            StaffRoleRow.user_id == user.id, StaffRoleRow.role == role.value
        )
    ).first()
    if holds is None:
        raise InvalidInput.on(
            "reviewer",
            f"{user.username} does not hold the {role.value} role, which a "
            f"{assignment.kind.value} reviewer needs",
        )
    if problem := _coi(session, user, row, org):
        raise InvalidInput.on("reviewer", problem)
    review = ReviewRow(
        proposal_id=row.id,
        reviewer_id=user.id,
        kind=assignment.kind.value,
        comment="",
        assigned_at=now,
    )
    session.add(review)
    notify(
        session,
        [user.id],
        "review-assigned",
        f"Please review proposal {row.id} ({assignment.kind.value}): {row.title}",
        f"You are asked for a {assignment.kind.value} review of a proposal from {org.name}. "
        "If you have a conflict of interest, declare it instead of reviewing.",
        now,
        link=f"/proposals/{row.id}",
    )
    commit(
        session,
        f"{user.username} is already assigned a {assignment.kind.value} review of proposal {row.id}",
    )
    return _review(review, row.title, user.username)


def submit_review(
    session: Session, who: Principal, proposal_id: int, submission: ReviewSubmission, now: datetime
) -> Review:
    """Submit one's own review of a proposal one is assigned to: a score (scientific), a
    feasibility verdict (technical) and a comment; or a declared conflict of interest,
    after which the review does not count."""
    row = _proposal_row(session, who, proposal_id)
    review = session.scalars(
        select(ReviewRow).where(
            ReviewRow.proposal_id == row.id,
            ReviewRow.reviewer_id == who.user_id,
            ReviewRow.kind == submission.kind.value,
        )
    ).first()
    if review is None:
        raise Forbidden(
            f"you are not assigned a {submission.kind.value} review of proposal {row.id}"
        )
    if review.submitted_at is not None:
        raise Conflict(f"your {submission.kind.value} review of proposal {row.id} is already in")
    if ProposalState(row.state) is not ProposalState.UNDER_REVIEW:
        raise Conflict(f"proposal {row.id} is {row.state}: it takes no reviews now")
    declared = (submission.conflict or "").strip()
    if declared:
        review.conflict = declared
    else:
        user = session.get(UserRow, who.user_id)
        org = _organisation(session, row.organisation_id)
        # Enforced again at submission: the reviewer may have changed organisation.
        if user is not None and (problem := _coi(session, user, row, org)):
            raise Forbidden(problem)
        if submission.kind is ReviewKind.TECHNICAL and submission.feasible is None:
            raise InvalidInput.on("feasible", "a technical review says whether it can run")
        if submission.kind is ReviewKind.SCIENTIFIC and submission.score is None:
            raise InvalidInput.on("score", "a scientific or business review gives a score of 1-5")
        review.score = submission.score
        review.feasible = submission.feasible
    review.comment = submission.comment
    review.submitted_at = now
    commit(session, f"your review of proposal {row.id} changed meanwhile")
    return _review(review, row.title, who.username)


def list_my_reviews(
    session: Session, who: Principal, page: PageRequest, pending_only: bool = False
) -> Page[Review]:
    """The reviews the caller is assigned, newest first; `pending_only`: not yet submitted."""
    query = (
        select(ReviewRow, ProposalRow.title)
        .join(ProposalRow, ProposalRow.id == ReviewRow.proposal_id)
        .where(ReviewRow.reviewer_id == who.user_id)
        .order_by(ReviewRow.id.desc())
    )
    if pending_only:
        query = query.where(ReviewRow.submitted_at.is_(None))
    total = count_all(session, query)
    found = session.execute(query.limit(page.limit).offset(page.offset))
    items = [_review(r, title, who.username) for r, title in found]
    return Page(items, total, page.limit, page.offset)


def _counted_reviews(session: Session, proposal_id: int) -> dict[ReviewKind, int]:
    counted: dict[ReviewKind, int] = {}
    for kind in session.scalars(
        select(ReviewRow.kind).where(
            ReviewRow.proposal_id == proposal_id,
            ReviewRow.submitted_at.is_not(None),
            ReviewRow.conflict.is_(None),
        )
    ):
        counted[ReviewKind(kind)] = counted.get(ReviewKind(kind), 0) + 1
    return counted


def _allocation_sites(session: Session, residency: str) -> list[str]:
    """The sites an allocation may be spent on, from the proposal's residency: any site
    (empty) unless it names Dutch sites only, or one site."""
    if residency in {RESIDENCY_ANY, RESIDENCY_EU}:
        return []
    if residency == RESIDENCY_NL:
        return list(
            session.scalars(
                select(SiteRow.name).where(SiteRow.jurisdiction == "nl").order_by(SiteRow.name)
            )
        )
    return [residency]


def decide(
    session: Session,
    who: Principal,
    proposal_id: int,
    draft: DecisionDraft,
    access: AccessConfig,
    now: datetime,
) -> Proposal:
    """Decide a proposal under review: award (what was asked, unless `awarded` says
    otherwise), partial award or rejection, with reasons. An award creates the allocation
    (normalised GPU-hours, from now for the months asked) and the members are told."""
    row, call, track, _org = _context(session, who, proposal_id, access)
    requested = dict(row.requested)
    if draft.decision is DecisionKind.REJECT:
        if draft.awarded and any(h > 0 for h in draft.awarded.values()):
            raise InvalidInput.on("awarded", "a rejection awards nothing")
        awarded: dict[str, float] = {}
    else:
        awarded = dict(draft.awarded) if draft.awarded is not None else requested
    kind = decision_kind(requested, awarded, draft.reason)
    if kind is not draft.decision:
        raise InvalidInput.on(
            "decision",
            f"awarding {_raw(awarded) or 'nothing'} against {_raw(requested)} asked is "
            f"{'an' if kind is DecisionKind.AWARD else 'a'} {kind.value}, not {draft.decision.value}",
        )
    check_transition(row.id, ProposalState(row.state), DECIDED_STATE[kind])
    if kind is not DecisionKind.REJECT:
        if problem := reviews_problem(track, _counted_reviews(session, row.id)):
            raise Conflict(f"proposal {row.id}: {problem}")
        months = allocation_months(track, draft.months if draft.months is not None else row.months)
        session.add(
            AllocationRow(
                project_id=row.project_id,
                proposal_id=row.id,
                track=track.code,
                gpu_hours=access.normalised(awarded).value,
                awarded=awarded,
                sites=_allocation_sites(session, row.residency),
                preemptible=track.preemptible,
                tier=track.tier,
                starts_at=now,
                ends_at=add_months(now, months),
                created_at=now,
            )
        )
    _move(session, row, DECIDED_STATE[kind])
    row.decision = kind.value
    row.decision_reason = (draft.reason or "").strip() or None
    row.awarded = awarded
    row.decided_at = now
    _flag_if_breached(session, row, call, track, now)
    subject = {
        DecisionKind.AWARD: f"Proposal {row.id} is awarded",
        DecisionKind.PARTIAL: f"Proposal {row.id} is awarded in part",
        DecisionKind.REJECT: f"Proposal {row.id} is not awarded",
    }[kind]
    body = f"{row.title}: {kind.value}" + (
        f", {access.normalised(awarded)} ({_raw(awarded)})" if awarded else ""
    )
    if row.decision_reason:
        body += f". Reason: {row.decision_reason}"
    notify(session, _members(session, row.project_id), "proposal-decided", subject, body, now,
           link=f"/proposals/{row.id}")  # fmt: skip
    audit.record_admin(
        session, who, now, "proposal-decision", project_id=row.project_id,
        target=f"proposal {row.id}", decision=kind.value, awarded=awarded,
        reason=row.decision_reason,
    )  # fmt: skip
    commit(session, f"proposal {row.id} changed meanwhile")
    return _one(session, who, row, access, now)


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
    return _allocation(allocation, project)


# --- the turnaround promise ------------------------------------------------------------------


def _flag_if_breached(
    session: Session, row: ProposalRow, call: CallRow, track: Track, now: datetime
) -> bool:
    """Tell the access team, once, that this proposal's clock has broken the track's
    promise. Not committed: it lands with the caller's change."""
    if row.breach_flagged_at is not None:
        return False
    clock = turnaround(track, call.closes_at, row.submitted_at, row.decided_at, now)
    if not clock.breached or not notify_once(session, f"breach:proposal:{row.id}", now):
        return False
    row.breach_flagged_at = now
    due = f"{clock.due_at:%Y-%m-%d}" if clock.due_at else "?"
    notify(
        session,
        staff_with_role(session, Role.ACCESS_TEAM),
        "turnaround-breach",
        f"Proposal {row.id} broke the {track.name} track's promise of "
        f"{track.decision_working_days} working days",
        f"{row.title} (call {call.code}) was due a decision by {due}; "
        f"{clock.used_working_days} working days used so far.",
        now,
        link=f"/proposals/{row.id}",
    )
    return True


def flag_turnaround_breaches(session: Session, now: datetime, access: AccessConfig) -> int:
    """Flag every undecided proposal whose turnaround clock has run past its track's
    promise to the access team, once each; commits; how many were flagged now. Meant for a
    periodic cycle (decisions flag their own late breach)."""
    found = session.execute(
        select(ProposalRow, CallRow)
        .join(CallRow, CallRow.id == ProposalRow.call_id)
        .where(
            ProposalRow.state.in_([s.value for s in CLOCK_RUNNING]),
            ProposalRow.breach_flagged_at.is_(None),
        )
        .order_by(ProposalRow.id)
    ).all()
    flagged = 0
    for row, call in found:
        track = access.tracks.get(call.track)
        if track is not None and _flag_if_breached(session, row, call, track, now):
            flagged += 1
    session.commit()
    return flagged
