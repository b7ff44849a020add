"""What the access pages need beside the proposal path itself: the projects a person may
apply for and whether each may apply to a track; who runs a proposal; who may review."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.access.proposals import Proposal, ReviewKind
from fabriek.domain.access.tracks import AccessConfig, Track
from fabriek.domain.geography import Hub
from fabriek.domain.identity.organisations import OrganisationKind
from fabriek.domain.roles import Principal, Role
from fabriek.services.access.calls import runs_calls
from fabriek.services.access.reviewing import REVIEWER_ROLE
from fabriek.store.tables import (
    MembershipRow,
    OrganisationRow,
    ProjectRow,
    StaffRoleRow,
    UserRow,
)


@dataclass(frozen=True)
class ApplyingProject:
    """A project the caller is a member of, with what a track's eligibility looks at."""

    name: str
    title: str
    organisation: str
    kind: str
    country: str
    hub: str

    def problem(self, track: Track) -> str | None:
        """Why this project's organisation may not apply to `track`, or None."""
        try:
            kind, hub = OrganisationKind(self.kind), Hub(self.hub)
        except ValueError:
            return f"{self.organisation} has an unknown kind or hub"
        return track.eligibility_problem(kind, self.country, hub)


def applying_projects(session: Session, who: Principal) -> list[ApplyingProject]:
    """The projects the caller may write proposals for (those they are a member of), by
    name."""
    rows = session.execute(
        select(ProjectRow.name, ProjectRow.title, OrganisationRow.name, OrganisationRow.kind,
               OrganisationRow.country, OrganisationRow.hub)
        .join(OrganisationRow, OrganisationRow.id == ProjectRow.organisation_id)
        .join(MembershipRow, MembershipRow.project_id == ProjectRow.id)
        .where(MembershipRow.user_id == who.user_id)
        .order_by(ProjectRow.name)
    )  # fmt: skip
    return [ApplyingProject(*row) for row in rows]


def runs_proposal(
    session: Session, who: Principal, proposal: Proposal, access: AccessConfig
) -> bool:
    """Whether the caller checks, assigns reviewers to and decides this proposal: the
    access team and admins; on a hub-run track also the staff of the applicant's hub (the
    rule `proposal_checks.may_run` enforces)."""
    if runs_calls(who):
        return True
    track = access.tracks.get(proposal.track)
    if track is None or not track.run_by_hub:
        return False
    hub = session.scalar(
        select(OrganisationRow.hub).where(OrganisationRow.id == proposal.organisation_id)
    )
    return hub is not None and hub in who.scopes(Role.HUB_STAFF)


def may_run_some_call(who: Principal) -> bool:
    """Whether the caller has a decision queue at all: the access team, admins, and hub
    staff (who run their hub's regional track)."""
    return runs_calls(who) or who.has_role(Role.HUB_STAFF)


@dataclass(frozen=True)
class Candidate:
    """Someone who may be asked for a review of one kind."""

    username: str
    full_name: str


def reviewer_candidates(session: Session, kind: ReviewKind) -> list[Candidate]:
    """The people holding the role a review of `kind` needs, by username (whether one of
    them has a conflict with a proposal is checked when they are assigned)."""
    rows = session.execute(
        select(UserRow.username, UserRow.full_name)
        .join(StaffRoleRow, StaffRoleRow.user_id == UserRow.id)
        .where(StaffRoleRow.role == REVIEWER_ROLE[kind].value)
        .distinct()
        .order_by(UserRow.username)
    )
    return [Candidate(username, full_name) for username, full_name in rows]
