"""Who may see and act on a proposal, and the rules a draft and a submission must pass
against the store: the call open, the organisation eligible, the size and residency
allowed, no overdue final report. A proposal the caller may not see is 'not found'."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, select, true
from sqlalchemy.orm import Session

from fabriek.domain.access.calls import call_open_problem
from fabriek.domain.access.proposals import (
    RESIDENCY_ANY,
    RESIDENCY_EU,
    RESIDENCY_NL,
    ProposalState,
    final_report_due,
    report_overdue,
    request_problem,
)
from fabriek.domain.access.tracks import AccessConfig, Track
from fabriek.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from fabriek.domain.geography import Hub
from fabriek.domain.identity.organisations import OrganisationKind
from fabriek.domain.inputs import is_id
from fabriek.domain.roles import Principal, Role
from fabriek.services.access.calls import runs_calls
from fabriek.services.identity.projects import visible_projects
from fabriek.store.tables import (
    AllocationRow,
    CallRow,
    OrganisationRow,
    ProjectRow,
    ProposalRow,
    ReviewRow,
    SiteRow,
)

# --- visibility and permission ----------------------------------------------------------------


def visible(who: Principal) -> ColumnElement[bool]:
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


def may_run(who: Principal, track: Track | None, organisation: OrganisationRow) -> bool:
    """Who checks, assigns reviewers to and decides a proposal: the access team and
    admins; on a hub-run track also the staff of the applicant's own hub."""
    if runs_calls(who):
        return True
    return bool(track and track.run_by_hub and organisation.hub in who.scopes(Role.HUB_STAFF))


def require_run(who: Principal, track: Track | None, organisation: OrganisationRow) -> None:
    """Forbidden unless the caller may run this proposal (see `may_run`)."""
    if not may_run(who, track, organisation):
        extra = " or the staff of the applicant's hub" if track and track.run_by_hub else ""
        raise Forbidden(f"only the access team{extra} or an admin may do this")


def proposal_row(session: Session, who: Principal, proposal_id: int) -> ProposalRow:
    """The proposal's row if the caller may see it, else 'not found'."""
    row = session.scalars(
        select(ProposalRow).where(ProposalRow.id == proposal_id, visible(who))
    ).first()
    if row is None:
        raise NotFound("proposal", proposal_id)
    return row


def track_of(access: AccessConfig, call: CallRow) -> Track:
    """The configured track of the call's proposals."""
    track = access.tracks.get(call.track)
    if track is None:
        # The configuration lost a track that calls still use: say so, do not guess.
        raise Conflict(f"call {call.code} is on track {call.track!r}, no longer configured")
    return track


def organisation_of(session: Session, organisation_id: int) -> OrganisationRow:
    """The organisation row behind a foreign key."""
    org = session.get(OrganisationRow, organisation_id)
    if org is None:  # a foreign key makes this impossible; the type checker cannot know
        raise NotFound("organisation", organisation_id)
    return org


# --- the rules checked at draft and at submission ---------------------------------------------


def require_open(call: CallRow, now: datetime) -> None:
    """Conflict unless the call is open at `now`."""
    problem = call_open_problem(call.code, call.opens_at, call.closes_at, now)
    if problem:
        raise Conflict(problem)


def require_eligible(track: Track, org: OrganisationRow) -> None:
    """InvalidInput unless the organisation may apply to the track."""
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


def require_size(track: Track, requested: dict[str, float], access: AccessConfig) -> float:
    """The request in normalised GPU-hours, if the track allows its size."""
    problem = request_problem(requested)
    if problem:
        raise InvalidInput.on("requested", problem)
    normalised = access.normalised(requested)
    problem = track.size_problem(normalised)
    if problem:
        raise InvalidInput.on("requested", f"{problem} (normalised from {raw_hours(requested)})")
    return normalised.value


def raw_hours(hours: dict[str, float]) -> str:
    """GPU-hours per GPU type, as people read them: '1,000 A100 GPU-h'."""
    return ", ".join(f"{h:,.0f} {gpu} GPU-h" for gpu, h in sorted(hours.items()))


def require_residency(session: Session, residency: str) -> None:
    """InvalidInput unless the residency is 'any', 'eu', 'nl' or a site's name."""
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


def require_no_overdue_report(session: Session, org: OrganisationRow, now: datetime) -> None:
    """Conflict while the organisation has an overdue final report."""
    overdue = overdue_reports(session, org.id, now)
    if overdue:
        first = overdue[0]
        raise Conflict(
            f"{org.name} has {len(overdue)} overdue final report(s) and cannot submit new "
            f"proposals until they are filed: allocation {first.id} ended "
            f"{first.ends_at:%Y-%m-%d}, its report was due {final_report_due(first.ends_at):%Y-%m-%d}"
            f" (file it with POST /api/v1/allocations/{first.id}/final-report)"
        )


def member_project(session: Session, who: Principal, ref: str) -> ProjectRow:
    """The caller's project by name or id, for writing its proposals."""
    query = select(ProjectRow).where(visible_projects(who, ProjectRow.id))
    query = (
        query.where(ProjectRow.id == int(ref))
        if is_id(ref)
        else query.where(ProjectRow.name == ref)
    )
    project = session.scalars(query).first()
    if project is None:
        raise NotFound("project", ref)
    if not who.in_project(project.id):
        raise Forbidden(f"only the members of project {project.name} may write its proposals")
    return project


def call_of(session: Session, row: ProposalRow) -> CallRow:
    """The call a proposal was written to."""
    call = session.get(CallRow, row.call_id)
    if call is None:  # a foreign key makes this impossible
        raise NotFound("call", row.call_id)
    return call
