"""Use cases for people: add users, grant staff roles, list them."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import ColumnElement, false, select
from sqlalchemy.orm import Session

from fabriek.domain.errors import Forbidden, InvalidInput, NotFound
from fabriek.domain.geography import Hub
from fabriek.domain.identity.people import StaffRoleGrant, User, UserDraft
from fabriek.domain.inputs import is_id
from fabriek.domain.roles import PROJECT_ROLES, SCOPED_ROLES, Principal, Role
from fabriek.services import audit
from fabriek.services.identity.permissions import may_manage_hub
from fabriek.services.paging import Page, PageRequest, fetch_page
from fabriek.services.transactions import clash_is_conflict
from fabriek.store.tables import (
    MembershipRow,
    OrganisationRow,
    ProjectRow,
    SiteRow,
    StaffRoleRow,
    UserRow,
)


def user_from_row(session: Session, row: UserRow) -> User:
    grants = session.execute(
        select(StaffRoleRow.role, StaffRoleRow.scope)
        .where(StaffRoleRow.user_id == row.id)
        .order_by(StaffRoleRow.id)
    ).all()
    return User(
        id=row.id,
        username=row.username,
        full_name=row.full_name,
        email=row.email,
        organisation_id=row.organisation_id,
        staff_roles=[StaffRoleGrant(role=Role(r), scope=s) for r, s in grants],
        created_at=row.created_at,
    )


def _check_grant(session: Session, grant: StaffRoleGrant, index: int) -> None:
    field = f"staff_roles.{index}"
    if grant.role in PROJECT_ROLES:
        raise InvalidInput.on(field, f"{grant.role} is held in a project: add a membership")
    if grant.role in SCOPED_ROLES and not grant.scope:
        raise InvalidInput.on(field, f"{grant.role} needs a scope (a hub or a site)")
    if grant.role not in SCOPED_ROLES and grant.scope:
        raise InvalidInput.on(field, f"{grant.role} takes no scope")
    if grant.role == Role.HUB_STAFF and grant.scope not in {h.value for h in Hub}:
        raise InvalidInput.on(field, f"no AI hub {grant.scope!r}; known: {', '.join(Hub)}")
    if grant.role == Role.SITE_OPERATOR and not session.scalar(
        select(SiteRow.id).where(SiteRow.name == grant.scope)
    ):
        raise InvalidInput.on(field, f"no site named {grant.scope!r}")


def add_user(
    session: Session, who: Principal, draft: UserDraft, now: datetime | None = None
) -> User:
    """Admins add anyone; hub staff add people of organisations in their hub, without roles."""
    org = None
    if draft.organisation_id is not None:
        org = session.get(OrganisationRow, draft.organisation_id)
        if org is None:
            raise InvalidInput.on("organisation_id", f"no organisation {draft.organisation_id}")
    if not who.is_admin:
        if org is None or not may_manage_hub(who, org.hub):
            raise Forbidden("only an admin, or staff of the organisation's hub, may add users")
        if draft.staff_roles:
            raise Forbidden("only an admin may grant staff roles")
    for i, grant in enumerate(draft.staff_roles):
        _check_grant(session, grant, i)
    row = UserRow(
        username=draft.username,
        full_name=draft.full_name,
        email=draft.email,
        organisation_id=draft.organisation_id,
    )
    with clash_is_conflict(
        session, f"a user named {draft.username!r} or with that e-mail already exists"
    ):
        session.add(row)
        session.flush()
        session.add_all(
            StaffRoleRow(user_id=row.id, role=g.role.value, scope=g.scope)
            for g in dict.fromkeys(draft.staff_roles)
        )
        audit.record_admin(
            session, who, now or datetime.now(UTC), "user-add", target=f"user {row.username}",
            organisation_id=row.organisation_id,
            staff_roles=[f"{g.role}:{g.scope}" if g.scope else str(g.role)
                         for g in dict.fromkeys(draft.staff_roles)],
        )  # fmt: skip
        session.commit()
    return user_from_row(session, row)


def get_user(session: Session, who: Principal, ref: str) -> User:
    query = select(UserRow)
    query = (
        query.where(UserRow.id == int(ref)) if is_id(ref) else query.where(UserRow.username == ref)
    )
    row = session.scalars(query).first()
    if row is None or not (
        row.id == who.user_id
        or who.is_admin
        or session.scalar(select(UserRow.id).where(UserRow.id == row.id, _in_my_hubs(who)))
    ):
        raise NotFound("user", ref)
    return user_from_row(session, row)


def _in_my_hubs(who: Principal) -> ColumnElement[bool]:
    """People a hub's staff may look up: those of the hub's organisations, and members of
    its organisations' projects (personal data is shared no wider than the hub serves)."""
    hubs = who.scopes(Role.HUB_STAFF)
    if not hubs:
        return false()
    orgs = select(OrganisationRow.id).where(OrganisationRow.hub.in_(hubs))
    members = (
        select(MembershipRow.user_id)
        .join(ProjectRow, ProjectRow.id == MembershipRow.project_id)
        .where(ProjectRow.organisation_id.in_(orgs))
    )
    return UserRow.organisation_id.in_(orgs) | UserRow.id.in_(members)


def list_users(
    session: Session, who: Principal, page: PageRequest, q: str | None = None
) -> Page[User]:
    if not (who.is_admin or who.has_role(Role.HUB_STAFF)):
        raise Forbidden("only admins and hub staff may list users")
    query = select(UserRow).order_by(UserRow.id)
    if not who.is_admin:
        query = query.where(_in_my_hubs(who))
    if q:
        query = query.where(UserRow.username.ilike(f"%{q}%") | UserRow.full_name.ilike(f"%{q}%"))
    rows, total = fetch_page(session, query, page)
    return Page([user_from_row(session, r) for r in rows], total, page.limit, page.offset)


def whoami(session: Session, who: Principal) -> tuple[User, dict[str, str]]:
    """The caller and their projects (name -> role)."""
    row = session.get(UserRow, who.user_id)
    if row is None:  # pragma: no cover - authentication just found this user
        raise NotFound("user", who.user_id)
    rows = session.execute(
        select(ProjectRow.name, MembershipRow.role)
        .join(MembershipRow, MembershipRow.project_id == ProjectRow.id)
        .where(MembershipRow.user_id == who.user_id)
        .order_by(ProjectRow.name)
    )
    projects = {name: role for name, role in rows}
    return user_from_row(session, row), projects
