"""Requests for expertise (from a support ticket or about a proposal): who may see and
manage them, matching them to experts, assigning experts within their availability and
logging the hours they delivered."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime

from sqlalchemy import ColumnElement, or_, select, true, update
from sqlalchemy.orm import Session

from fabriek.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from fabriek.domain.geography import Hub, Province
from fabriek.domain.identity.organisations import SECTOR_OF, OrganisationKind
from fabriek.domain.roles import Principal, Role
from fabriek.domain.support.expertise import (
    Assignment,
    AssignmentDraft,
    Consultation,
    ConsultationDraft,
    ExpertiseRequest,
    ExpertiseRequestDraft,
    month_start,
)
from fabriek.domain.support.matching import ExpertOption, MatchResult, Need, match
from fabriek.services.identity.permissions import may_manage_hub
from fabriek.services.identity.projects import visible_projects
from fabriek.services.paging import Page, PageRequest, fetch_page
from fabriek.services.support.expertise import (
    expert_row,
    hours_left_of,
    read_hub,
    read_month,
    require_known,
    skills_of,
    today,
    vocabulary,
)
from fabriek.services.transactions import commit
from fabriek.store.tables import (
    ConsultationRow,
    ExpertAssignmentRow,
    ExpertiseRequestRow,
    ExpertRow,
    MembershipRow,
    OrganisationRow,
    ProposalRow,
    UserRow,
)

# -- requests ------------------------------------------------------------------------------------


def _visible_requests(who: Principal) -> ColumnElement[bool]:
    """Requests the caller may see: their own, their hub's (the requester's hub, or that
    of an expert assigned), those about proposals of their projects; all for admins."""
    if who.is_admin:
        return true()
    mine = select(MembershipRow.project_id).where(MembershipRow.user_id == who.user_id)
    seen = [
        ExpertiseRequestRow.created_by == who.user_id,
        ExpertiseRequestRow.proposal_id.in_(
            select(ProposalRow.id).where(ProposalRow.project_id.in_(mine))
        ),
    ]
    hubs = who.scopes(Role.HUB_STAFF)
    if hubs:
        seen.append(ExpertiseRequestRow.hub.in_(hubs))
        seen.append(
            ExpertiseRequestRow.id.in_(
                select(ExpertAssignmentRow.request_id)
                .join(ExpertRow, ExpertRow.id == ExpertAssignmentRow.expert_id)
                .where(ExpertRow.hub.in_(hubs))
            )
        )
    return or_(*seen)


def _request_row(session: Session, who: Principal, request_id: int) -> ExpertiseRequestRow:
    row = session.scalar(
        select(ExpertiseRequestRow).where(
            ExpertiseRequestRow.id == request_id, _visible_requests(who)
        )
    )
    if row is None:
        raise NotFound("expertise request", request_id)
    return row


def _may_manage(who: Principal, request: ExpertiseRequestRow, expert_hub: str | None) -> bool:
    """Who assigns experts and logs their hours: the staff of the requester's hub or of
    the expert's hub, and admins."""
    return may_manage_hub(who, request.hub) or (
        expert_hub is not None and may_manage_hub(who, expert_hub)
    )


def _requester(session: Session, who: Principal, draft: ExpertiseRequestDraft) -> OrganisationRow:
    """The organisation a request is for: the proposal's, the one named, or the caller's."""
    staff = who.is_admin or who.has_role(Role.HUB_STAFF)
    if draft.ticket_id is not None and not staff:
        raise Forbidden("only hub staff and admins ask for expertise on a ticket's behalf")
    organisation_id = draft.organisation_id
    if draft.proposal_id is not None:
        proposal = session.scalar(
            select(ProposalRow).where(
                ProposalRow.id == draft.proposal_id,
                visible_projects(who, ProposalRow.project_id),
            )
        )
        if proposal is None:
            raise NotFound("proposal", draft.proposal_id)
        if organisation_id is not None and organisation_id != proposal.organisation_id:
            raise InvalidInput.on(
                "organisation_id", "leave it out: the proposal's organisation is the requester"
            )
        organisation_id = proposal.organisation_id
    elif organisation_id is None:
        user = session.get(UserRow, who.user_id)
        organisation_id = user.organisation_id if user else None
        if organisation_id is None:
            raise InvalidInput.on("organisation_id", "name the organisation the expertise is for")
    org = session.get(OrganisationRow, organisation_id)
    if org is None:
        raise InvalidInput.on("organisation_id", f"no organisation {organisation_id}")
    if draft.proposal_id is None and not staff:
        user = session.get(UserRow, who.user_id)
        if user is None or user.organisation_id != org.id:
            raise Forbidden("ask for expertise for your own organisation, or about a proposal")
    return org


def create_request(
    session: Session, who: Principal, draft: ExpertiseRequestDraft, now: datetime
) -> ExpertiseRequest:
    """Ask for expertise: about a ticket (hub staff, admins), a proposal (whoever sees its
    project) or for one's own organisation."""
    require_known(draft.skills)
    org = _requester(session, who, draft)
    row = ExpertiseRequestRow(
        skills=list(draft.skills), hours=draft.hours, description=draft.description.strip(),
        language=draft.language, ticket_id=draft.ticket_id, proposal_id=draft.proposal_id,
        organisation_id=org.id, province=org.province, hub=org.hub,
        sector=SECTOR_OF[OrganisationKind(org.kind)].value, created_by=who.user_id,
        created_at=now,
    )  # fmt: skip
    session.add(row)
    commit(session, "the request could not be stored; try again")
    return _request_views(session, [row])[0]


def _request_views(session: Session, rows: list[ExpertiseRequestRow]) -> list[ExpertiseRequest]:
    ids = [r.id for r in rows]
    assignments: dict[int, list[ExpertAssignmentRow]] = defaultdict(list)
    consultations: dict[int, list[ConsultationRow]] = defaultdict(list)
    for a in session.scalars(
        select(ExpertAssignmentRow)
        .where(ExpertAssignmentRow.request_id.in_(ids))
        .order_by(ExpertAssignmentRow.id)
    ):
        assignments[a.request_id].append(a)
    for c in session.scalars(
        select(ConsultationRow)
        .where(ConsultationRow.request_id.in_(ids))
        .order_by(ConsultationRow.day, ConsultationRow.id)
    ):
        consultations[c.request_id].append(c)
    user_ids = {r.created_by for r in rows}
    user_ids |= {a.assigned_by for group in assignments.values() for a in group}
    user_ids |= {c.logged_by for group in consultations.values() for c in group}
    users = dict(
        session.execute(select(UserRow.id, UserRow.username).where(UserRow.id.in_(user_ids))).all()
    )
    expert_ids = {a.expert_id for g in assignments.values() for a in g}
    expert_ids |= {c.expert_id for g in consultations.values() for c in g}
    experts = {
        e.id: e for e in session.scalars(select(ExpertRow).where(ExpertRow.id.in_(expert_ids)))
    }
    orgs = dict(
        session.execute(
            select(OrganisationRow.id, OrganisationRow.name).where(
                OrganisationRow.id.in_({r.organisation_id for r in rows})
            )
        ).all()
    )
    views = []
    for r in rows:
        delivered: dict[int, float] = defaultdict(float)
        for c in consultations[r.id]:
            delivered[c.expert_id] += c.hours
        views.append(
            ExpertiseRequest(
                id=r.id, skills=list(r.skills), hours=r.hours, description=r.description,
                language=r.language, ticket_id=r.ticket_id, proposal_id=r.proposal_id,
                organisation=orgs.get(r.organisation_id, str(r.organisation_id)),
                province=Province(r.province), hub=Hub(r.hub), sector=r.sector,
                created_by=users.get(r.created_by, "?"), created_at=r.created_at,
                assignments=[
                    Assignment(
                        expert_id=a.expert_id, expert=experts[a.expert_id].name,
                        hub=Hub(experts[a.expert_id].hub), month=a.month,
                        hours_reserved=a.hours, hours_delivered=round(delivered[a.expert_id], 4),
                        assigned_by=users.get(a.assigned_by, "?"), assigned_at=a.assigned_at,
                    )
                    for a in assignments[r.id]
                ],
                consultations=[
                    Consultation(
                        id=c.id, expert_id=c.expert_id, expert=experts[c.expert_id].name,
                        day=c.day, hours=c.hours, note=c.note,
                        logged_by=users.get(c.logged_by, "?"), logged_at=c.logged_at,
                    )
                    for c in consultations[r.id]
                ],
                hours_delivered=round(sum(delivered.values()), 4),
            )
        )  # fmt: skip
    return views


def get_request(session: Session, who: Principal, request_id: int) -> ExpertiseRequest:
    return _request_views(session, [_request_row(session, who, request_id)])[0]


def list_requests(
    session: Session,
    who: Principal,
    page: PageRequest,
    hub: str | None = None,
    ticket_id: int | None = None,
    proposal_id: int | None = None,
) -> Page[ExpertiseRequest]:
    """The requests the caller may see, newest first; by the requester's hub, a ticket
    or a proposal if given."""
    query = (
        select(ExpertiseRequestRow)
        .where(_visible_requests(who))
        .order_by(ExpertiseRequestRow.id.desc())
    )
    if hub is not None:
        query = query.where(ExpertiseRequestRow.hub == read_hub(hub).value)
    if ticket_id is not None:
        query = query.where(ExpertiseRequestRow.ticket_id == ticket_id)
    if proposal_id is not None:
        query = query.where(ExpertiseRequestRow.proposal_id == proposal_id)
    rows, total = fetch_page(session, query, page)
    return Page(_request_views(session, rows), total, page.limit, page.offset)


# -- matching and assigning ----------------------------------------------------------------------


def _need(row: ExpertiseRequestRow) -> Need:
    return Need(
        skills=frozenset(row.skills), hours=row.hours, hub=Hub(row.hub),
        province=Province(row.province), language=row.language,
    )  # fmt: skip


def match_request(
    session: Session, who: Principal, request_id: int, now: datetime, month: str | None = None
) -> tuple[date, MatchResult]:
    """The active experts to propose for a request in `month` (default this one), best
    first and explained; those passed over, with why. Experts already assigned to it are
    left out."""
    row = _request_row(session, who, request_id)
    when = read_month(month, now)
    assigned = select(ExpertAssignmentRow.expert_id).where(ExpertAssignmentRow.request_id == row.id)
    experts = list(
        session.scalars(
            select(ExpertRow)
            .where(ExpertRow.active.is_(True), ExpertRow.id.not_in(assigned))
            .order_by(ExpertRow.id)
        )
    )
    skills = skills_of(session, [e.id for e in experts])
    left = hours_left_of(session, experts, when)
    options = [
        ExpertOption(
            id=e.id, name=e.name, hub=Hub(e.hub), skills=frozenset(skills.get(e.id, [])),
            languages=frozenset(e.languages or []), hours_per_month=e.hours_per_month,
            hours_left=left[e.id],
        )
        for e in experts
    ]  # fmt: skip
    labels = {code: skill.en for code, skill in vocabulary().skills.items()}
    return when, match(_need(row), options, labels, when)


def assign_expert(
    session: Session, who: Principal, request_id: int, draft: AssignmentDraft, now: datetime
) -> ExpertiseRequest:
    """Assign an expert to a request, reserving hours of a month (default: this one, and
    the hours asked). Refused beyond the hours the expert has left that month."""
    row = _request_row(session, who, request_id)
    expert = expert_row(session, draft.expert_id)
    if not _may_manage(who, row, expert.hub):
        raise Forbidden(
            "only the staff of the requester's hub or the expert's hub, or an admin, may assign"
        )
    # Writing the expert's row (changing nothing) serialises assignments of one expert on
    # both stores: a row lock on PostgreSQL, the write lock on SQLite (which begins a
    # transaction only at its first write). So two assignments can never both take the
    # last hours: the second reads what the first booked.
    session.execute(
        update(ExpertRow)
        .where(ExpertRow.id == expert.id)
        .values(hours_per_month=ExpertRow.hours_per_month)
    )
    session.refresh(expert)
    when = read_month(draft.month, now)
    if when < month_start(today(now)):
        raise InvalidInput.on("month", f"{when:%Y-%m} has passed; assign this month or later")
    if not expert.active:
        raise Conflict(f"{expert.name} no longer takes requests; choose another expert")
    skills = set(skills_of(session, [expert.id]).get(expert.id, []))
    if not skills & set(row.skills):
        labels = ", ".join(vocabulary().label(s) for s in row.skills)
        raise InvalidInput.on("expert_id", f"{expert.name} has none of the skills asked ({labels})")
    if session.scalar(
        select(ExpertAssignmentRow.id).where(
            ExpertAssignmentRow.request_id == row.id, ExpertAssignmentRow.expert_id == expert.id
        )
    ):
        raise Conflict(f"{expert.name} is already assigned to request {row.id}")
    hours = draft.hours if draft.hours is not None else row.hours
    left = hours_left_of(session, [expert], when)[expert.id]
    if hours > left:
        raise Conflict(
            f"{expert.name} has {left:g} h left of {expert.hours_per_month:g} h in "
            f"{when:%Y-%m}, and {hours:g} h were asked: assign fewer hours, another month, "
            f"or another expert (see the request's matches)"
        )
    session.add(
        ExpertAssignmentRow(
            request_id=row.id, expert_id=expert.id, month=when, hours=hours,
            assigned_by=who.user_id, assigned_at=now,
        )
    )  # fmt: skip
    commit(session, f"{expert.name} was assigned to request {row.id} meanwhile")
    return get_request(session, who, row.id)


def log_consultation(
    session: Session, who: Principal, request_id: int, draft: ConsultationDraft, now: datetime
) -> ExpertiseRequest:
    """Log hours an assigned expert delivered on a request, on a day (default today)."""
    row = _request_row(session, who, request_id)
    assigned = list(
        session.execute(
            select(ExpertAssignmentRow.expert_id, ExpertRow.name, ExpertRow.hub)
            .join(ExpertRow, ExpertRow.id == ExpertAssignmentRow.expert_id)
            .where(ExpertAssignmentRow.request_id == row.id)
            .order_by(ExpertAssignmentRow.id)
        )
    )
    if not assigned:
        if not _may_manage(who, row, None):
            raise Forbidden("only the staff of the requester's hub or an admin may log hours")
        raise Conflict(f"no expert is assigned to request {row.id}: assign one first")
    if draft.expert_id is None:
        if len(assigned) > 1:
            names = ", ".join(f"{name} ({eid})" for eid, name, _ in assigned)
            raise InvalidInput.on("expert_id", f"name the expert: assigned are {names}")
        expert_id, _, hub = assigned[0]
    else:
        found = [a for a in assigned if a[0] == draft.expert_id]
        if not found:
            expert_row(session, draft.expert_id)
            raise Conflict(f"expert {draft.expert_id} is not assigned to request {row.id}")
        expert_id, _, hub = found[0]
    if not _may_manage(who, row, hub):
        raise Forbidden(
            "only the staff of the requester's hub or the expert's hub, or an admin, may log hours"
        )
    day = draft.day or today(now)
    if day > today(now):
        raise InvalidInput.on("day", f"{day} is in the future; log hours once delivered")
    session.add(
        ConsultationRow(
            request_id=row.id, expert_id=expert_id, day=day, hours=draft.hours,
            note=draft.note.strip(), hub=hub, sector=row.sector, logged_by=who.user_id,
            logged_at=now,
        )
    )  # fmt: skip
    commit(session, "the request changed meanwhile; try again")
    return get_request(session, who, row.id)
