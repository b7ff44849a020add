"""The expertise network's directory: the experts with their skills from the shipped
vocabulary, their hours left in a month, and the hours delivered per sector (requests,
matching and assigning are `fabriek.services.support.expertise_requests`).

Availability is never a running total: an expert's hours left in a month are their hours
per month less what their assignments reserved there (or delivered, where that is more),
computed from the store each time (`fabriek.domain.support.expertise.hours_left`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from functools import cache

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from fabriek.domain.calendar import AMSTERDAM
from fabriek.domain.errors import InvalidInput, NotFound
from fabriek.domain.geography import HUBS, Hub
from fabriek.domain.roles import Principal, Role
from fabriek.domain.support.expertise import (
    Booking,
    Expert,
    ExpertDraft,
    ExpertPatch,
    SkillVocabulary,
    hours_left,
    month_start,
    parse_month,
    parse_vocabulary,
)
from fabriek.services import audit
from fabriek.services.config_files import load_config_file
from fabriek.services.identity.permissions import require_hub
from fabriek.services.paging import Page, PageRequest, fetch_page
from fabriek.services.transactions import commit
from fabriek.store.tables import ConsultationRow, ExpertAssignmentRow, ExpertRow, ExpertSkillRow


@cache
def vocabulary() -> SkillVocabulary:
    """The shipped vocabulary of skills (`fabriek/config/expertise.toml`)."""
    return load_config_file(None, "expertise.toml", "expertise vocabulary", parse_vocabulary)


def require_known(skills: Iterable[str]) -> None:
    problem = vocabulary().describe_unknown(skills)
    if problem:
        raise InvalidInput.on("skills", problem)


def today(now: datetime) -> date:
    """The date in the Netherlands, where the hubs keep their months."""
    return now.astimezone(AMSTERDAM).date()


def read_month(value: date | str | None, now: datetime) -> date:
    if value is None:
        return month_start(today(now))
    if isinstance(value, date):
        return month_start(value)
    try:
        return parse_month(value)
    except ValueError as bad:
        raise InvalidInput.on("month", str(bad)) from None


def next_month(month: date) -> date:
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
            ConsultationRow.day < next_month(month),
        )
        .group_by(ConsultationRow.expert_id, ConsultationRow.request_id)
    ):  # fmt: skip
        delivered[(expert_id, request_id)] += hours or 0.0
    found: dict[int, list[Booking]] = defaultdict(list)
    for key in set(reserved) | set(delivered):
        found[key[0]].append(Booking(reserved.get(key, 0.0), delivered.get(key, 0.0)))
    return found


def hours_left_of(session: Session, experts: list[ExpertRow], month: date) -> dict[int, float]:
    bookings = _bookings(session, [e.id for e in experts], month)
    return {e.id: round(hours_left(e.hours_per_month, bookings.get(e.id, [])), 4) for e in experts}


# -- the directory -------------------------------------------------------------------------------


def skills_of(session: Session, expert_ids: list[int]) -> dict[int, list[str]]:
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
    skills = skills_of(session, [r.id for r in rows])
    left = hours_left_of(session, rows, month)
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


def expert_row(session: Session, expert_id: int) -> ExpertRow:
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
    when = read_month(month, now)
    query = select(ExpertRow).order_by(ExpertRow.name, ExpertRow.id)
    if skill is not None:
        require_known([skill])
        query = query.where(
            ExpertRow.id.in_(select(ExpertSkillRow.expert_id).where(ExpertSkillRow.skill == skill))
        )
    if hub is not None:
        query = query.where(ExpertRow.hub == read_hub(hub).value)
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


def read_hub(value: str) -> Hub:
    try:
        return Hub(value)
    except ValueError:
        known = ", ".join(h.value for h in Hub)
        raise InvalidInput.on("hub", f"no hub {value!r}; known: {known}") from None


def get_expert(
    session: Session, who: Principal, expert_id: int, now: datetime, month: str | None = None
) -> Expert:
    return _views(session, who, [expert_row(session, expert_id)], read_month(month, now))[0]


def create_expert(session: Session, who: Principal, draft: ExpertDraft, now: datetime) -> Expert:
    """Add an expert to a hub's network (that hub's staff, admins)."""
    require_hub(who, draft.hub.value, "add experts to its network")
    require_known(draft.skills)
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
    row = expert_row(session, expert_id)
    require_hub(who, row.hub, "change its experts")
    changes = patch.model_dump(exclude_unset=True)
    if patch.hub is not None:
        require_hub(who, patch.hub.value, "take experts into its network")
        row.hub = patch.hub.value
    if patch.skills is not None:
        require_known(patch.skills)
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
            ConsultationRow.day < next_month(first),
        )
        .group_by(ConsultationRow.sector)
        .order_by(ConsultationRow.sector)
    )
    return {sector: round(float(hours or 0.0), 4) for sector, hours in rows}
