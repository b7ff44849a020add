"""The platform's orders applied in Fabriek, through the services that own the rows:
organisations, people, projects, members and allocations are made and changed by their
own use cases (audited, checked), acting as the federation's account.

Every step finds before it makes (the organisation by name, a person by e-mail, the
project by its name from the resource, the project's one allocation), so an order applied
twice, or again after a crash half way, changes nothing the second time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fabriek.domain.access.allocations import AllocationDraft
from fabriek.domain.access.tracks import AccessConfig
from fabriek.domain.errors import InvalidInput
from fabriek.domain.federation import (
    OrderKind,
    Person,
    PlatformOrder,
    UnknownPolicy,
    member_changes,
    project_name,
    track_for,
    username_for,
)
from fabriek.domain.geography import Province
from fabriek.domain.identity.organisations import OrganisationKind
from fabriek.domain.identity.people import (
    MembershipDraft,
    OrganisationDraft,
    ProjectDraft,
    UserDraft,
)
from fabriek.domain.roles import Principal, Role
from fabriek.services.access.allocations import change_allocation, create_allocation
from fabriek.services.identity.organisations import onboard_organisation
from fabriek.services.identity.projects import add_member, create_project, remove_member
from fabriek.services.identity.tokens import principal_for_user
from fabriek.services.identity.users import add_user
from fabriek.store.tables import (
    AllocationRow,
    FederationResourceRow,
    MembershipRow,
    OrganisationRow,
    ProjectRow,
    UserRow,
)


class Held(Exception):
    """The order waits for an operator (the reason says what to do); nothing was changed."""


@dataclass(frozen=True)
class OrderRules:
    """What the operator configured for orders (see `docs/federation.md`)."""

    access: AccessConfig
    unknown: UnknownPolicy
    organisation_kind: OrganisationKind
    organisation_province: Province
    actor: str


def acting_as(session: Session, username: str) -> Principal:
    """The federation's account, an admin of this Fabriek: it makes and changes what orders
    ask, and the audit trail names it."""
    row = session.scalars(select(UserRow).where(UserRow.username == username)).first()
    if row is None:
        raise InvalidInput(
            f"no user {username!r} for the federation to act as: add it with the admin role "
            "(POST /api/v1/users), or name another in FABRIEK_FEDERATION_ACTOR"
        )
    who = principal_for_user(session, row.id, row.username)
    if not who.is_admin:
        raise InvalidInput(f"the federation's account {username!r} must hold the admin role")
    return who


def _organisation(session: Session, name: str) -> OrganisationRow | None:
    return session.scalars(
        select(OrganisationRow).where(func.lower(OrganisationRow.name) == name.lower())
    ).first()


def _person(session: Session, person: Person) -> UserRow | None:
    if person.email:
        found = session.scalars(
            select(UserRow).where(func.lower(UserRow.email) == person.email.lower())
        ).first()
        if found is not None:
            return found
    return session.scalars(
        select(UserRow).where(UserRow.username == username_for(person.username, person.email))
    ).first()


def _unknown(session: Session, order: PlatformOrder) -> list[str]:
    """What the order names that Fabriek does not know (its organisation, its principal
    investigator), in words. Other members Fabriek does not know join once they are known."""
    missing = []
    if _organisation(session, order.organisation) is None:
        missing.append(f"organisation {order.organisation!r}")
    pi = order.principal_investigator
    if pi is not None and _person(session, pi) is None:
        missing.append(f"person {pi.full_name} <{pi.email or pi.username}>")
    return missing


def _ensure_organisation(
    session: Session, who: Principal, rules: OrderRules, name: str, now: datetime
) -> OrganisationRow:
    found = _organisation(session, name)
    if found is not None:
        return found
    draft = OrganisationDraft(
        name=name, kind=rules.organisation_kind, province=rules.organisation_province
    )
    made = onboard_organisation(session, who, draft, now)
    row = session.get(OrganisationRow, made.id)
    assert row is not None
    return row


def _ensure_person(
    session: Session, who: Principal, person: Person, organisation_id: int, now: datetime
) -> UserRow:
    found = _person(session, person)
    if found is not None:
        return found
    if not person.email:
        raise InvalidInput(f"the platform gives no e-mail for {person.full_name}")
    made = add_user(
        session,
        who,
        UserDraft(
            username=username_for(person.username, person.email),
            full_name=person.full_name or person.username,
            email=person.email,
            organisation_id=organisation_id,
        ),
        now,
    )
    row = session.get(UserRow, made.id)
    assert row is not None
    return row


def _ends_at(order: PlatformOrder) -> datetime | None:
    """An end date is the last day of the allocation: it ends at the next midnight (UTC)."""
    if order.ends_on is None:
        return None
    return datetime.combine(order.ends_on + timedelta(days=1), time(), tzinfo=UTC)


def resource_of(session: Session, resource_uuid: str) -> FederationResourceRow | None:
    return session.get(FederationResourceRow, resource_uuid)


def apply_order(
    session: Session,
    who: Principal,
    rules: OrderRules,
    order: PlatformOrder,
    team: list[Person],
    now: datetime,
) -> str:
    """Apply one order in Fabriek; what was done, in words. Raises `Held` when it must wait
    for an operator, and the domain's errors (InvalidInput, Conflict, ...) when it cannot be
    applied: their message is the reason the platform is given."""
    if order.kind == OrderKind.CREATE:
        return _create(session, who, rules, order, team, now)
    known = resource_of(session, order.resource_uuid)
    if known is None:
        raise InvalidInput(
            f"resource {order.resource_uuid} has no project in Fabriek (no create order was "
            "applied for it)"
        )
    if order.kind == OrderKind.UPDATE:
        return _update(session, who, rules, order, known, now)
    return _terminate(session, who, rules, known, now)


def _accepted(
    session: Session, rules: OrderRules, order: PlatformOrder
) -> tuple[str, float, Person]:
    """A new order's access track, GPU-hours and principal investigator, once the order is
    found complete: InvalidInput where it is not, Held where it names people or an
    organisation Fabriek does not know and the rules say to wait for them to be onboarded."""
    track = track_for(order.access_mode or "", list(rules.access.tracks))
    if track is None:
        known = ", ".join(t.name for t in rules.access.tracks.values())
        raise InvalidInput(
            f"access mode {order.access_mode!r} is not one of this factory's: {known}"
        )
    if order.gpu_hours is None or order.gpu_hours <= 0:
        raise InvalidInput("the order awards no GPU-hours (limit gpu_hours)")
    if order.principal_investigator is None:
        raise InvalidInput("the order names no principal investigator (its creator)")
    missing = _unknown(session, order)
    if missing and rules.unknown == UnknownPolicy.HOLD:
        raise Held(
            f"Fabriek does not know {', '.join(missing)}: onboard them (POST "
            "/api/v1/organisations, POST /api/v1/users), or set "
            "FABRIEK_FEDERATION_UNKNOWN=create; the next sync takes the order"
        )
    return track, order.gpu_hours, order.principal_investigator


def _create(
    session: Session,
    who: Principal,
    rules: OrderRules,
    order: PlatformOrder,
    team: list[Person],
    now: datetime,
) -> str:
    existing = resource_of(session, order.resource_uuid)
    if existing is not None:  # the same resource ordered again (or restored): up to date
        done = _update(session, who, rules, order, existing, now)
        if existing.terminated_at is not None:
            existing.terminated_at = None  # restored: its team is followed again
            session.commit()
        return done
    track, gpu_hours, investigator = _accepted(session, rules, order)
    org = _ensure_organisation(session, who, rules, order.organisation, now)
    pi = _ensure_person(session, who, investigator, org.id, now)
    name = project_name(order.resource_name, order.resource_uuid)
    project = session.scalars(select(ProjectRow).where(ProjectRow.name == name)).first()
    if project is None:
        create_project(
            session,
            who,
            ProjectDraft(
                name=name,
                title=(order.project_title or order.resource_name)[:200],
                description=order.project_description[:10_000],
                organisation_id=org.id,
                principal_investigator=pi.username,
            ),
            now,
        )
        project = session.scalars(select(ProjectRow).where(ProjectRow.name == name)).one()
    allocation = session.scalars(
        select(AllocationRow).where(AllocationRow.project_id == project.id)
    ).first()
    if allocation is None:
        made = create_allocation(
            session,
            who,
            now,
            rules.access,
            AllocationDraft(
                project=name,
                track=track,
                gpu_hours={"any": gpu_hours},
                ends_at=_ends_at(order),
            ),
        )
        allocation_id = made.id
    else:
        allocation_id = allocation.id
    session.add(
        FederationResourceRow(
            resource_uuid=order.resource_uuid,
            project_id=project.id,
            allocation_id=allocation_id,
            access_mode=order.access_mode,
            decided_at=order.decided_at,
            created_at=now,
        )
    )
    session.commit()
    sync_members(session, who, rules, order.resource_uuid, team, now)
    return f"project {name} with allocation {allocation_id} ({track}, {gpu_hours:g} GPU-hours)"


def _update(
    session: Session,
    who: Principal,
    rules: OrderRules,
    order: PlatformOrder,
    known: FederationResourceRow,
    now: datetime,
) -> str:
    hours = {"any": order.gpu_hours} if order.gpu_hours else None
    changed = change_allocation(
        session, who, now, rules.access, known.allocation_id, gpu_hours=hours,
        ends_at=_ends_at(order),
    )  # fmt: skip
    return (
        f"allocation {changed.id}: {changed.awarded_gpu_hours:g} GPU-hours until "
        f"{changed.ends_at:%Y-%m-%d}"
    )


def _terminate(
    session: Session,
    who: Principal,
    rules: OrderRules,
    known: FederationResourceRow,
    now: datetime,
) -> str:
    if known.terminated_at is None:
        allocation = session.get(AllocationRow, known.allocation_id)
        assert allocation is not None
        if allocation.ends_at > now:
            # It ends now, not before it started: one that had not begun ends as it begins.
            change_allocation(
                session, who, now, rules.access, known.allocation_id,
                ends_at=max(now, allocation.starts_at + timedelta(microseconds=1)),
            )  # fmt: skip
        known.terminated_at = now
        session.commit()
    return f"allocation {known.allocation_id} ended"


def sync_members(
    session: Session,
    who: Principal,
    rules: OrderRules,
    resource_uuid: str,
    team: list[Person],
    now: datetime,
) -> tuple[int, int]:
    """Make a resource's project hold the platform's team: who joined is added (a person
    Fabriek does not know is created, or waits, per the setting), who left is removed; the
    principal investigator stays. The number added and removed."""
    known = resource_of(session, resource_uuid)
    if known is None or known.terminated_at is not None:
        return 0, 0
    project = session.get(ProjectRow, known.project_id)
    assert project is not None
    members = {
        u: r
        for u, r in session.execute(
            select(UserRow.username, MembershipRow.role)
            .join(MembershipRow, MembershipRow.user_id == UserRow.id)
            .where(MembershipRow.project_id == project.id)
        )
    }
    on_team: dict[str, Person] = {}
    for person in team:
        user = _person(session, person)
        if user is None:
            if rules.unknown == UnknownPolicy.HOLD:
                continue  # joins once an operator adds them
            user = _ensure_person(session, who, person, project.organisation_id, now)
        on_team[user.username] = person
    keep = {u for u, r in members.items() if r == Role.PRINCIPAL_INVESTIGATOR.value}
    changes = member_changes(set(members), set(on_team), keep)
    for username in changes.add:
        add_member(session, who, project.name, MembershipDraft(username=username), now)
    for username in changes.remove:
        remove_member(session, who, project.name, username, now)
    known.members_synced_at = now
    session.commit()
    return len(changes.add), len(changes.remove)
