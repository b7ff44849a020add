"""Use cases for projects and their members. A project the caller may not see is 'not found'."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select, true
from sqlalchemy.orm import InstrumentedAttribute, Session

from fabriek.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from fabriek.domain.identity.people import Membership, MembershipDraft, Project, ProjectDraft
from fabriek.domain.inputs import is_id
from fabriek.domain.roles import PROJECT_ROLES, Principal, Role
from fabriek.services import audit
from fabriek.services.identity.permissions import may_manage_hub
from fabriek.services.paging import Page, PageRequest, count_all
from fabriek.services.transactions import clash_is_conflict, commit
from fabriek.store.tables import MembershipRow, OrganisationRow, ProjectRow, UserRow


def visible_projects(who: Principal, project_id: InstrumentedAttribute[int]) -> ColumnElement[bool]:
    """Whether `project_id` (a column: of projects, of jobs, ...) is a project the caller
    may see: their own, their hub's, or any for admins. The one rule of tenant isolation."""
    if who.is_admin:
        return true()
    mine = project_id.in_(
        select(MembershipRow.project_id).where(MembershipRow.user_id == who.user_id)
    )
    hubs = who.scopes(Role.HUB_STAFF)
    if not hubs:
        return mine
    return mine | project_id.in_(
        select(ProjectRow.id)
        .join(OrganisationRow, OrganisationRow.id == ProjectRow.organisation_id)
        .where(OrganisationRow.hub.in_(hubs))
    )


def may_see_project(session: Session, who: Principal, project_id: int) -> bool:
    """Whether the caller may see this one project (`visible_projects`): who may see it is
    told why they may not act on it (403); for anyone else it does not exist (404)."""
    return (
        session.scalar(
            select(ProjectRow.id).where(
                ProjectRow.id == project_id, visible_projects(who, ProjectRow.id)
            )
        )
        is not None
    )


def visible_accounts(who: Principal, project_id: InstrumentedAttribute[int]) -> ColumnElement[bool]:
    """Whether the caller may see a project's allocations and usage: as `visible_projects`,
    and every project for the access team, who award and watch the budgets."""
    if who.has_role(Role.ACCESS_TEAM):
        return true()
    return visible_projects(who, project_id)


def _visible(who: Principal) -> ColumnElement[bool]:
    return visible_projects(who, ProjectRow.id)


def _project_query() -> Select[Any]:
    members = (
        select(func.count())
        .where(MembershipRow.project_id == ProjectRow.id)
        .correlate(ProjectRow)
        .scalar_subquery()
    )
    return select(ProjectRow, OrganisationRow.name, members).join(
        OrganisationRow, OrganisationRow.id == ProjectRow.organisation_id
    )


def _project(row: ProjectRow, organisation: str, members: int) -> Project:
    return Project(
        id=row.id,
        name=row.name,
        title=row.title,
        description=row.description,
        organisation_id=row.organisation_id,
        organisation=organisation,
        members=members,
        created_at=row.created_at,
    )


def _project_row(session: Session, who: Principal, ref: str) -> ProjectRow:
    query = select(ProjectRow).where(_visible(who))
    query = (
        query.where(ProjectRow.id == int(ref))
        if is_id(ref)
        else query.where(ProjectRow.name == ref)
    )
    row = session.scalars(query).first()
    if row is None:
        raise NotFound("project", ref)
    return row


def get_project(session: Session, who: Principal, ref: str) -> Project:
    row = _project_row(session, who, ref)
    found = session.execute(_project_query().where(ProjectRow.id == row.id)).one()
    return _project(*found)


def list_projects(
    session: Session,
    who: Principal,
    page: PageRequest,
    organisation_id: int | None = None,
    name: str | None = None,
) -> Page[Project]:
    query = _project_query().where(_visible(who)).order_by(ProjectRow.id)
    if organisation_id is not None:
        query = query.where(ProjectRow.organisation_id == organisation_id)
    if name:
        query = query.where(ProjectRow.name.ilike(f"%{name}%"))
    total = count_all(session, query)
    rows = session.execute(query.limit(page.limit).offset(page.offset)).all()
    return Page([_project(*r) for r in rows], total, page.limit, page.offset)


def _user_by_name(session: Session, username: str, field: str) -> UserRow:
    user = session.scalars(select(UserRow).where(UserRow.username == username)).first()
    if user is None:
        raise InvalidInput.on(field, f"no user named {username!r}")
    return user


def create_project(
    session: Session, who: Principal, draft: ProjectDraft, now: datetime | None = None
) -> Project:
    """Admins, and hub staff for organisations of their hub, open projects."""
    org = session.get(OrganisationRow, draft.organisation_id)
    if org is None:
        raise InvalidInput.on("organisation_id", f"no organisation {draft.organisation_id}")
    if not may_manage_hub(who, org.hub):
        raise Forbidden("only an admin, or staff of the organisation's hub, may open a project")
    pi = (
        _user_by_name(session, draft.principal_investigator, "principal_investigator")
        if draft.principal_investigator
        else None
    )
    row = ProjectRow(
        name=draft.name,
        title=draft.title,
        description=draft.description,
        organisation_id=org.id,
    )
    with clash_is_conflict(session, f"a project named {draft.name!r} already exists"):
        session.add(row)
        session.flush()
        if pi is not None:
            session.add(
                MembershipRow(
                    project_id=row.id, user_id=pi.id, role=Role.PRINCIPAL_INVESTIGATOR.value
                )
            )
        audit.record_admin(
            session, who, now or datetime.now(UTC), "project-create", project_id=row.id,
            target=f"project {row.name}", organisation_id=org.id,
            principal_investigator=pi.username if pi else None,
        )  # fmt: skip
        session.commit()
    return _project(row, org.name, 1 if pi else 0)


def _require_lead(session: Session, who: Principal, row: ProjectRow) -> None:
    org = session.get(OrganisationRow, row.organisation_id)
    if who.leads_project(row.id) or (org is not None and may_manage_hub(who, org.hub)):
        return
    raise Forbidden(f"only the principal investigator of {row.name}, its hub or an admin may")


def list_members(session: Session, who: Principal, ref: str) -> list[Membership]:
    row = _project_row(session, who, ref)
    found = session.execute(
        select(MembershipRow, UserRow)
        .join(UserRow, UserRow.id == MembershipRow.user_id)
        .where(MembershipRow.project_id == row.id)
        .order_by(UserRow.username)
    ).all()
    return [
        Membership(
            project=row.name,
            username=u.username,
            full_name=u.full_name,
            role=Role(m.role),
            since=m.created_at,
        )
        for m, u in found
    ]


def add_member(
    session: Session,
    who: Principal,
    ref: str,
    draft: MembershipDraft,
    now: datetime | None = None,
) -> Membership:
    row = _project_row(session, who, ref)
    _require_lead(session, who, row)
    if draft.role not in PROJECT_ROLES:
        raise InvalidInput.on(
            "role", f"a project member is one of: {', '.join(sorted(PROJECT_ROLES))}"
        )
    user = _user_by_name(session, draft.username, "username")
    if session.get(MembershipRow, (row.id, user.id)) is not None:
        raise Conflict(f"{user.username} is already a member of {row.name}")
    member = MembershipRow(project_id=row.id, user_id=user.id, role=draft.role.value)
    session.add(member)
    audit.record_admin(
        session, who, now or datetime.now(UTC), "member-add", project_id=row.id,
        target=f"user {user.username}", role=draft.role.value,
    )  # fmt: skip
    commit(session, f"{user.username} is already a member of {row.name}")
    return Membership(
        project=row.name,
        username=user.username,
        full_name=user.full_name,
        role=draft.role,
        since=member.created_at,
    )


def remove_member(
    session: Session, who: Principal, ref: str, username: str, now: datetime | None = None
) -> None:
    row = _project_row(session, who, ref)
    _require_lead(session, who, row)
    user = session.scalars(select(UserRow).where(UserRow.username == username)).first()
    member = session.get(MembershipRow, (row.id, user.id)) if user else None
    if member is None:
        raise NotFound("member", f"{username} of project {row.name}")
    session.delete(member)
    audit.record_admin(
        session, who, now or datetime.now(UTC), "member-remove", project_id=row.id,
        target=f"user {username}", role=member.role,
    )  # fmt: skip
    session.commit()
