"""Proposals on the access team's side of their path: the administrative check, reviewer
assignments and reviews (with conflicts of interest), and the decision that creates the
allocation. On a hub-run track the staff of the applicant's hub act as the access team."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.access.proposals import (
    DECIDED_STATE,
    RESIDENCY_ANY,
    RESIDENCY_EU,
    RESIDENCY_NL,
    AdminCheck,
    DecisionDraft,
    DecisionKind,
    Proposal,
    ProposalState,
    Review,
    ReviewerAssignment,
    ReviewKind,
    ReviewSubmission,
    add_months,
    allocation_months,
    check_transition,
    conflict_of_interest,
    decision_kind,
    reviews_problem,
)
from fabriek.domain.access.tracks import AccessConfig, Track
from fabriek.domain.errors import Conflict, Forbidden, InvalidInput
from fabriek.domain.roles import Principal, Role
from fabriek.services import audit
from fabriek.services.access.proposal_checks import (
    call_of,
    organisation_of,
    proposal_row,
    raw_hours,
    require_run,
    track_of,
)
from fabriek.services.access.proposals import move, proposal_out, to_review
from fabriek.services.access.turnaround import flag_if_breached
from fabriek.services.notifications.inbox import notify
from fabriek.services.paging import Page, PageRequest, count_all
from fabriek.services.transactions import commit
from fabriek.store.tables import (
    AllocationRow,
    CallRow,
    MembershipRow,
    OrganisationRow,
    ProposalRow,
    ReviewRow,
    SiteRow,
    StaffRoleRow,
    UserRow,
)

# The staff role a reviewer of each kind must hold.
REVIEWER_ROLE = {ReviewKind.TECHNICAL: Role.SITE_OPERATOR, ReviewKind.SCIENTIFIC: Role.REVIEWER}


# --- the access team's steps ----------------------------------------------------------------


def _context(
    session: Session, who: Principal, proposal_id: int, access: AccessConfig
) -> tuple[ProposalRow, CallRow, Track, OrganisationRow]:
    row = proposal_row(session, who, proposal_id)
    call = call_of(session, row)
    track = track_of(access, call)
    org = organisation_of(session, row.organisation_id)
    require_run(who, track, org)
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
        move(session, row, ProposalState.UNDER_REVIEW)
        row.admin_check = note or "passed"
    else:
        if not note:
            raise InvalidInput.on("note", "say why the administrative check failed")
        check_transition(row.id, ProposalState(row.state), ProposalState.REJECTED)
        move(session, row, ProposalState.REJECTED)
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
    return proposal_out(session, who, row, access, now)


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
    return to_review(review, row.title, user.username)


def submit_review(
    session: Session, who: Principal, proposal_id: int, submission: ReviewSubmission, now: datetime
) -> Review:
    """Submit one's own review of a proposal one is assigned to: a score (scientific), a
    feasibility verdict (technical) and a comment; or a declared conflict of interest,
    after which the review does not count."""
    row = proposal_row(session, who, proposal_id)
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
        org = organisation_of(session, row.organisation_id)
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
    return to_review(review, row.title, who.username)


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
    items = [to_review(r, title, who.username) for r, title in found]
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
            f"awarding {raw_hours(awarded) or 'nothing'} against {raw_hours(requested)} asked is "
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
    move(session, row, DECIDED_STATE[kind])
    row.decision = kind.value
    row.decision_reason = (draft.reason or "").strip() or None
    row.awarded = awarded
    row.decided_at = now
    flag_if_breached(session, row, call, track, now)
    subject = {
        DecisionKind.AWARD: f"Proposal {row.id} is awarded",
        DecisionKind.PARTIAL: f"Proposal {row.id} is awarded in part",
        DecisionKind.REJECT: f"Proposal {row.id} is not awarded",
    }[kind]
    body = f"{row.title}: {kind.value}" + (
        f", {access.normalised(awarded)} ({raw_hours(awarded)})" if awarded else ""
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
    return proposal_out(session, who, row, access, now)


def _members(session: Session, project_id: int) -> list[int]:
    return list(
        session.scalars(select(MembershipRow.user_id).where(MembershipRow.project_id == project_id))
    )
