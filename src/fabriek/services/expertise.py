"""The expertise network: the directory of experts, requests for expertise (from a support
ticket or about a proposal), matching them to experts, assigning experts within their
availability and logging the hours they delivered.

Availability is never a running total: an expert's hours left in a month are their hours
per month less what their assignments reserved there (or delivered, where that is more),
computed from the store each time (`fabriek.domain.expertise.hours_left`).
"""

from __future__ import annotations

import tomllib
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from functools import cache
from importlib import resources

from sqlalchemy import ColumnElement, delete, func, or_, select, true, update
from sqlalchemy.orm import Session

from fabriek.domain.calendar import AMSTERDAM
from fabriek.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from fabriek.domain.geography import HUBS, Hub, Province
from fabriek.domain.organisations import SECTOR_OF, OrganisationKind
from fabriek.domain.roles import Principal, Role
from fabriek.domain.support.expertise import (
    Assignment,
    AssignmentDraft,
    Booking,
    Consultation,
    ConsultationDraft,
    Expert,
    ExpertDraft,
    ExpertiseRequest,
    ExpertiseRequestDraft,
    ExpertPatch,
    SkillVocabulary,
    hours_left,
    month_start,
    parse_month,
    parse_vocabulary,
)
from fabriek.domain.support.matching import ExpertOption, MatchResult, Need, match
from fabriek.services import audit
from fabriek.services.paging import Page, PageRequest, fetch_page
from fabriek.services.permissions import may_manage_hub, require_hub
from fabriek.services.projects import visible_projects
from fabriek.services.transactions import commit
from fabriek.store.tables import (
    ConsultationRow,
    ExpertAssignmentRow,
    ExpertiseRequestRow,
    ExpertRow,
    ExpertSkillRow,
    MembershipRow,
    OrganisationRow,
    ProposalRow,
    UserRow,
)


@cache
def vocabulary() -> SkillVocabulary:
    """The shipped vocabulary of skills (`fabriek/config/expertise.toml`)."""
    text = resources.files("fabriek.config").joinpath("expertise.toml").read_text()
    try:
        return parse_vocabulary(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ValueError) as bad:
        raise InvalidInput(f"the shipped expertise.toml: {bad}") from None


def _require_known(skills: Iterable[str]) -> None:
    problem = vocabulary().describe_unknown(skills)
    if problem:
        raise InvalidInput.on("skills", problem)


def today(now: datetime) -> date:
    """The date in the Netherlands, where the hubs keep their months."""
    return now.astimezone(AMSTERDAM).date()


def _month(value: date | str | None, now: datetime) -> date:
    if value is None:
        return month_start(today(now))
    if isinstance(value, date):
        return month_start(value)
    try:
        return parse_month(value)
    except ValueError as bad:
        raise InvalidInput.on("month", str(bad)) from None


def _next_month(month: date) -> date:
    return (month + timedelta(days=32)).replace(day=1)


# -- availability --------------------------------------------------------------------------------


def _bookings(session: Session, expert_ids: list[int], month: date) -> dict[int, list[Booking]]:
    """Each expert's bookings in `month`: per assignment, reserved and delivered hours."""
    reserved: dict[tuple[int, int], float] = {}
    delivered: dict[tuple[int, int], float] = defaultdict(float)
    if not expert_ids:
        return {}
    for expert_id, request_id, hours in session.execute(
        select(ExpertAssignmentRow.expert_id, ExpertAssignmentRow.request_id, ExpertAssignmentRow.hours)
        .where(ExpertAssignmentRow.expert_id.in_(expert_ids), ExpertAssignmentRow.month == month)
    ):  # fmt: skip
        reserved[(expert_id, request_id)] = hours
    for expert_id, request_id, hours in session.execute(
        select(ConsultationRow.expert_id, ConsultationRow.request_id, func.sum(ConsultationRow.hours))
        .where(
            ConsultationRow.expert_id.in_(expert_ids),
            ConsultationRow.day >= month,
            ConsultationRow.day < _next_month(month),
        )
        .group_by(ConsultationRow.expert_id, ConsultationRow.request_id)
    ):  # fmt: skip
        delivered[(expert_id, request_id)] += hours or 0.0
    found: dict[int, list[Booking]] = defaultdict(list)
    for key in set(reserved) | set(delivered):
        found[key[0]].append(Booking(reserved.get(key, 0.0), delivered.get(key, 0.0)))
    return found


def _hours_left(session: Session, experts: list[ExpertRow], month: date) -> dict[int, float]:
    bookings = _bookings(session, [e.id for e in experts], month)
    return {e.id: round(hours_left(e.hours_per_month, bookings.get(e.id, [])), 4) for e in experts}


# -- the directory -------------------------------------------------------------------------------


def _skills_of(session: Session, expert_ids: list[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = defaultdict(list)
    if expert_ids:
        for expert_id, skill in session.execute(
            select(ExpertSkillRow.expert_id, ExpertSkillRow.skill)
            .where(ExpertSkillRow.expert_id.in_(expert_ids))
            .order_by(ExpertSkillRow.skill)
        ):
            found[expert_id].append(skill)
    return found


def _sees_contacts(who: Principal) -> bool:
    return who.is_admin or who.has_role(Role.HUB_STAFF)


def _views(session: Session, who: Principal, rows: list[ExpertRow], month: date) -> list[Expert]:
    skills = _skills_of(session, [r.id for r in rows])
    left = _hours_left(session, rows, month)
    contacts = _sees_contacts(who)
    return [
        Expert(
            id=r.id, name=r.name, email=r.email if contacts else None,
            organisation=r.organisation, hub=Hub(r.hub), hub_name=HUBS[Hub(r.hub)].name,
            skills=skills.get(r.id, []), languages=list(r.languages or []),
            hours_per_month=r.hours_per_month, hours_left=left[r.id], month=month,
            active=r.active,
        )
        for r in rows
    ]  # fmt: skip


def _expert_row(session: Session, expert_id: int) -> ExpertRow:
    row = session.get(ExpertRow, expert_id)
    if row is None:
        raise NotFound("expert", expert_id)
    return row


def list_experts(
    session: Session,
    who: Principal,
    now: datetime,
    page: PageRequest,
    skill: str | None = None,
    hub: str | None = None,
    language: str | None = None,
    month: str | None = None,
    active: bool | None = True,
) -> Page[Expert]:
    """The directory, by name: with `skill`, those who have it; `hub`, `language` likewise;
    active ones only unless `active` is None (all) or False. Hours left are for `month`
    (default this one)."""
    when = _month(month, now)
    query = select(ExpertRow).order_by(ExpertRow.name, ExpertRow.id)
    if skill is not None:
        _require_known([skill])
        query = query.where(
            ExpertRow.id.in_(select(ExpertSkillRow.expert_id).where(ExpertSkillRow.skill == skill))
        )
    if hub is not None:
        query = query.where(ExpertRow.hub == _hub(hub).value)
    if active is not None:
        query = query.where(ExpertRow.active.is_(active))
    if language is not None:
        # Few experts, and JSON containment differs per store: filtered here.
        rows = [r for r in session.scalars(query) if language.lower() in (r.languages or [])]
        total = len(rows)
        rows = rows[page.offset : page.offset + page.limit]
    else:
        rows, total = fetch_page(session, query, page)
    return Page(_views(session, who, rows, when), total, page.limit, page.offset)


def _hub(value: str) -> Hub:
    try:
        return Hub(value)
    except ValueError:
        known = ", ".join(h.value for h in Hub)
        raise InvalidInput.on("hub", f"no hub {value!r}; known: {known}") from None


def get_expert(
    session: Session, who: Principal, expert_id: int, now: datetime, month: str | None = None
) -> Expert:
    return _views(session, who, [_expert_row(session, expert_id)], _month(month, now))[0]


def create_expert(session: Session, who: Principal, draft: ExpertDraft, now: datetime) -> Expert:
    """Add an expert to a hub's network (that hub's staff, admins)."""
    require_hub(who, draft.hub.value, "add experts to its network")
    _require_known(draft.skills)
    row = add_expert(session, who.user_id, draft, now)
    audit.record_admin(session, who, now, "expert-add", target=f"expert {row.id}", hub=row.hub)
    commit(session, "the directory changed meanwhile; try again")
    return get_expert(session, who, row.id, now)


def add_expert(session: Session, created_by: int, draft: ExpertDraft, now: datetime) -> ExpertRow:
    """Write an expert and their skills into the session (the caller commits)."""
    row = ExpertRow(
        name=draft.name.strip(), email=draft.email, organisation=draft.organisation.strip(),
        hub=draft.hub.value, languages=list(draft.languages),
        hours_per_month=draft.hours_per_month, active=True, created_by=created_by,
        created_at=now,
    )  # fmt: skip
    session.add(row)
    session.flush()
    session.add_all(ExpertSkillRow(expert_id=row.id, skill=s) for s in draft.skills)
    return row


def update_expert(
    session: Session, who: Principal, expert_id: int, patch: ExpertPatch, now: datetime
) -> Expert:
    """Change an expert (staff of their hub, and of the hub they move to; admins)."""
    row = _expert_row(session, expert_id)
    require_hub(who, row.hub, "change its experts")
    changes = patch.model_dump(exclude_unset=True)
    if patch.hub is not None:
        require_hub(who, patch.hub.value, "take experts into its network")
        row.hub = patch.hub.value
    if patch.skills is not None:
        _require_known(patch.skills)
        session.execute(delete(ExpertSkillRow).where(ExpertSkillRow.expert_id == row.id))
        session.add_all(ExpertSkillRow(expert_id=row.id, skill=s) for s in patch.skills)
    for name in ("name", "organisation", "languages", "hours_per_month", "active"):
        value = changes.get(name)
        if value is not None:
            setattr(row, name, value.strip() if isinstance(value, str) else value)
    if "email" in changes:
        row.email = patch.email
    audit.record_admin(
        session, who, now, "expert-change", target=f"expert {row.id}", fields=sorted(changes)
    )
    commit(session, "the expert changed meanwhile; try again")
    return get_expert(session, who, row.id, now)


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
    _require_known(draft.skills)
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
        query = query.where(ExpertiseRequestRow.hub == _hub(hub).value)
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
    when = _month(month, now)
    assigned = select(ExpertAssignmentRow.expert_id).where(ExpertAssignmentRow.request_id == row.id)
    experts = list(
        session.scalars(
            select(ExpertRow)
            .where(ExpertRow.active.is_(True), ExpertRow.id.not_in(assigned))
            .order_by(ExpertRow.id)
        )
    )
    skills = _skills_of(session, [e.id for e in experts])
    left = _hours_left(session, experts, when)
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
    expert = _expert_row(session, draft.expert_id)
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
    when = _month(draft.month, now)
    if when < month_start(today(now)):
        raise InvalidInput.on("month", f"{when:%Y-%m} has passed; assign this month or later")
    if not expert.active:
        raise Conflict(f"{expert.name} no longer takes requests; choose another expert")
    skills = set(_skills_of(session, [expert.id]).get(expert.id, []))
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
    left = _hours_left(session, [expert], when)[expert.id]
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
            _expert_row(session, draft.expert_id)
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


# -- reporting -----------------------------------------------------------------------------------


def hours_by_hub_and_sector(session: Session, hub: str, month: date | str) -> dict[str, float]:
    """Consultation hours the experts of `hub` delivered in `month` (a date in it, or
    'YYYY-MM'), by the sector of the requester's organisation (start-ups, smes, industry,
    research, public); sectors without hours are left out."""
    first = month_start(month) if isinstance(month, date) else parse_month(month)
    rows = session.execute(
        select(ConsultationRow.sector, func.sum(ConsultationRow.hours))
        .where(
            ConsultationRow.hub == hub,
            ConsultationRow.day >= first,
            ConsultationRow.day < _next_month(first),
        )
        .group_by(ConsultationRow.sector)
        .order_by(ConsultationRow.sector)
    )
    return {sector: round(float(hours or 0.0), 4) for sector, hours in rows}
