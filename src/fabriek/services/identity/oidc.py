"""Signing in through an OpenID Connect provider: the sign-ins under way, and matching or
creating the person it vouches for.

A person is matched by (issuer, subject) only, never by username or e-mail: those can be
chosen or changed at the provider, the subject cannot. A person may have several such
identities linked to one account (`services/identity/identities.py`); two identities with
the same e-mail address are never joined by themselves. Someone new gets a user with a
unique username, their e-mail and name, and their organisation when its domain is known.
The sign-in's entitlements add and remove the project memberships they manage, and its
assurance must meet the operator's minimum for every role the person then holds, or the
sign-in is refused (and nothing it changed is kept). Each sign-in ends with a personal API
token for the portal's session cookie that keeps the sign-in's assurance and identity,
written with its audit entries in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import chain

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fabriek.domain.audit import AuditAction
from fabriek.domain.identity.assurance import NO_RULES, AssuranceRules, shortfalls
from fabriek.domain.identity.entitlements import (
    EntitlementScheme,
    MembershipChanges,
    membership_changes,
    wanted_memberships,
)
from fabriek.domain.identity.oidc import FederatedIdentity, LoginSecrets, username_candidates
from fabriek.domain.identity.people import TokenDraft
from fabriek.domain.roles import Role
from fabriek.services import audit
from fabriek.services.identity.oidc_client import SignInRefused
from fabriek.services.identity.tokens import TokenLineage, issue_token, project_tracks
from fabriek.store.tables import (
    MembershipRow,
    OidcLoginRow,
    OrganisationRow,
    ProjectRow,
    StaffRoleRow,
    UserIdentityRow,
    UserRow,
)

# How long a person may take at the provider's login page before the sign-in is void.
LOGIN_TTL = timedelta(minutes=10)
# The token behind the portal's session cookie: a day at most, and never shown to anyone.
SESSION_TOKEN_NAME = "portal sign-in (OpenID Connect)"
SESSION_TOKEN_DAYS = 1
# Attempts at a free username when others sign in with the same name at the same moment.
_USERNAME_ATTEMPTS = 5
# `MembershipRow.source` of the memberships a sign-in's entitlements manage.
ENTITLEMENT_SOURCE = "entitlement"


@dataclass(frozen=True)
class Link:
    """A sign-in that links another identity to a signed-in person's account: whose, and
    the key of their session's token (only that browser session may finish it)."""

    user_id: int
    token_key: str


@dataclass(frozen=True)
class PendingLogin:
    """A sign-in taken back at the callback: its secrets and where to go afterwards."""

    secrets: LoginSecrets
    next_path: str
    link: Link | None = None


@dataclass(frozen=True)
class SignedIn:
    """The outcome of a sign-in: who, whether they are new here, their organisation (None:
    not known to the factory, though the provider may have named one), and the session's
    API token (its secret, for the cookie only)."""

    user_id: int
    username: str
    full_name: str
    created: bool
    organisation: str | None
    claimed_domain: str | None
    projects: int
    session_token: str
    assurance: str = "none"


def begin_login(
    session: Session, secrets: LoginSecrets, next_path: str, now: datetime, link: Link | None = None
) -> None:
    """Keep a sign-in's secrets until its callback (and clear out abandoned ones); with
    `link`, the sign-in links an identity to that person's account instead."""
    session.execute(delete(OidcLoginRow).where(OidcLoginRow.created_at < now - LOGIN_TTL))
    session.add(
        OidcLoginRow(
            state=secrets.state,
            nonce=secrets.nonce,
            code_verifier=secrets.code_verifier,
            next_path=next_path[:500],
            created_at=now,
            link_user_id=link.user_id if link else None,
            link_token_key=link.token_key if link else None,
        )
    )
    session.commit()


def take_login(session: Session, state: str, now: datetime) -> PendingLogin:
    """The sign-in this state belongs to, removed so that it can be finished only once;
    SignInRefused (400) when it is unknown, used already or too old."""
    found = session.execute(
        delete(OidcLoginRow)
        .where(OidcLoginRow.state == state)
        .returning(OidcLoginRow.nonce, OidcLoginRow.code_verifier, OidcLoginRow.next_path,
                   OidcLoginRow.created_at, OidcLoginRow.link_user_id,
                   OidcLoginRow.link_token_key)
    ).first()  # fmt: skip
    session.commit()
    if found is None:
        raise SignInRefused(
            400,
            "this sign-in is unknown or was finished already: start again from the sign-in page",
        )
    nonce, verifier, next_path, created_at, link_user_id, link_token_key = found
    if created_at < now - LOGIN_TTL:
        raise SignInRefused(
            400, "this sign-in took longer than 10 minutes: start again from the sign-in page"
        )
    link = Link(link_user_id, link_token_key) if link_user_id and link_token_key else None
    return PendingLogin(LoginSecrets(state, nonce, verifier), next_path, link)


def _organisation(session: Session, domain: str | None) -> OrganisationRow | None:
    if domain is None:
        return None
    return session.scalar(select(OrganisationRow).where(OrganisationRow.domain == domain))


def _email_taken(session: Session, email: str, other_than: int | None = None) -> bool:
    query = select(UserRow.id).where(UserRow.email == email)
    if other_than is not None:
        query = query.where(UserRow.id != other_than)
    return session.scalar(query) is not None


def _create_user(session: Session, who: FederatedIdentity, org: OrganisationRow | None) -> UserRow:
    """A new user for this identity, under the first free username."""
    if _email_taken(session, who.email):
        # Never joined by the address alone: whoever controls an address at some provider
        # would take over the account. The person links the identities themselves.
        raise SignInRefused(
            409,
            f"an account with the e-mail address {who.email} already exists here but was "
            "never signed in with this identity: sign in the way you did before, then link "
            "this identity on your account's identities page (/account/identities); or ask "
            "the factory's operator",
        )
    candidates = username_candidates(who)
    base = next(candidates)
    taken = set(session.scalars(select(UserRow.username).where(UserRow.username.like(f"{base}%"))))
    names = (n for n in chain([base], candidates) if n not in taken)
    for _attempt in range(_USERNAME_ATTEMPTS):
        row = UserRow(
            username=next(names),
            full_name=who.full_name,
            email=who.email,
            organisation_id=org.id if org else None,
            oidc_issuer=who.issuer,
            oidc_sub=who.subject,
        )
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            # Someone took the name (or signed in as this same person) just now.
            existing = _by_subject(session, who)
            if existing is not None:
                return existing
            if _email_taken(session, who.email):
                raise SignInRefused(409, f"an account with {who.email} was just created") from None
            continue
        return row
    raise SignInRefused(409, "no free username was found for you: try again in a moment")


def by_identity(session: Session, issuer: str, subject: str) -> UserIdentityRow | None:
    """The identity row of (issuer, subject), made for a user that predates identity rows
    (its `oidc_issuer` and `oidc_sub`) when there is one."""
    found = session.scalar(select(UserIdentityRow).where(
        UserIdentityRow.issuer == issuer, UserIdentityRow.subject == subject))  # fmt: skip
    if found is not None:
        return found
    user = session.scalar(
        select(UserRow).where(UserRow.oidc_issuer == issuer, UserRow.oidc_sub == subject)
    )
    if user is None:
        return None
    return _add_identity(session, user, issuer, subject, user.email, user.created_at)


def _add_identity(
    session: Session, user: UserRow, issuer: str, subject: str, email: str | None, now: datetime
) -> UserIdentityRow:
    row = UserIdentityRow(user_id=user.id, issuer=issuer, subject=subject, email=email,
                          linked_at=now)  # fmt: skip
    session.add(row)
    session.flush()
    return row


def _by_subject(session: Session, who: FederatedIdentity) -> UserRow | None:
    found = by_identity(session, who.issuer, who.subject)
    return session.get(UserRow, found.user_id) if found is not None else None


@dataclass
class _Plan:
    """What a sign-in will change in the memberships its entitlements manage, and the
    person's project roles (by project name and id) once it has."""

    held: dict[str, MembershipRow]
    project_ids: dict[str, int]
    changes: MembershipChanges | None = None

    def roles_after(self) -> dict[str, Role]:
        after = {n: Role(m.role) for n, m in self.held.items()}
        if self.changes is not None:
            for project in self.changes.remove:
                after.pop(project, None)
            after.update(self.changes.change)
            after.update(self.changes.add)
        return after


def _plan(
    session: Session, user: UserRow | None, who: FederatedIdentity,
    scheme: EntitlementScheme | None,
) -> _Plan:  # fmt: skip
    """Read what the sign-in would change, writing nothing yet (a refused sign-in must
    leave no trace but its refusal)."""
    rows = [] if user is None else session.execute(
        select(ProjectRow.name, ProjectRow.id, MembershipRow)
        .join(MembershipRow, MembershipRow.project_id == ProjectRow.id)
        .where(MembershipRow.user_id == user.id)
    ).all()  # fmt: skip
    plan = _Plan({n: m for n, _i, m in rows}, {n: i for n, i, _m in rows})
    if scheme is None:
        return plan
    wanted = wanted_memberships(scheme, who.entitlements)
    plan.project_ids.update(session.execute(
        select(ProjectRow.name, ProjectRow.id).where(ProjectRow.name.in_(wanted))).all())  # fmt: skip
    managed = {n: Role(m.role) for n, m in plan.held.items() if m.source == ENTITLEMENT_SOURCE}
    by_hand = (n for n, m in plan.held.items() if m.source != ENTITLEMENT_SOURCE)
    plan.changes = membership_changes(wanted, managed, by_hand, plan.project_ids)
    return plan


def _withheld(
    session: Session, user: UserRow | None, plan: _Plan, rules: AssuranceRules,
    who: FederatedIdentity, now: datetime,
) -> list[str]:  # fmt: skip
    """The roles the person will hold that this sign-in is not sure enough for, in words."""
    if not rules:
        return []
    staff = [] if user is None else list(session.scalars(
        select(StaffRoleRow.role).where(StaffRoleRow.user_id == user.id)))  # fmt: skip
    roles = plan.roles_after()
    tracks = project_tracks(session, rules, [plan.project_ids[n] for n in roles], now)
    projects = {
        n: (r.value, tracks.get(plan.project_ids[n], frozenset())) for n, r in roles.items()
    }
    return [str(s) for s in shortfalls(rules, who.assurance, staff, projects)]


def _apply(
    session: Session, user: UserRow, plan: _Plan, who: FederatedIdentity,
    scheme: EntitlementScheme | None, now: datetime,
) -> list[dict[str, str]]:  # fmt: skip
    """Make the planned membership changes, each with its audit entry; the changes made,
    for the sign-in's entry."""
    changes = plan.changes
    if changes is None or scheme is None:
        return []
    done: list[dict[str, str]] = []

    def note(change: str, project: str, role: str) -> None:
        done.append({"change": change, "project": project, "role": role})
        audit.record(
            session, action=AuditAction.ENTITLEMENT, at=now, actor_id=user.id,
            actor=user.username, project_id=plan.project_ids[project],
            target=f"user {user.username}",
            detail={"change": change, "role": role, "issuer": who.issuer,
                    "subject": who.subject, "prefix": scheme.prefix},
        )  # fmt: skip

    for project, role in sorted(changes.add.items()):
        session.add(MembershipRow(project_id=plan.project_ids[project], user_id=user.id,
                                  role=role.value, source=ENTITLEMENT_SOURCE, created_at=now))  # fmt: skip
        note("member-add", project, role.value)
    for project, role in sorted(changes.change.items()):
        plan.held[project].role = role.value
        note("member-role", project, role.value)
    for project in sorted(changes.remove):
        session.delete(plan.held[project])
        note("member-remove", project, plan.held[project].role)
    return done


def _refuse(
    session: Session, user: UserRow | None, who: FederatedIdentity, now: datetime,
    withheld: list[str],
) -> SignInRefused:  # fmt: skip
    """Record the refusal (nothing else was written), and say what is missing."""
    session.rollback()
    audit.record(
        session, action=AuditAction.SIGN_IN_REFUSED, at=now,
        actor_id=user.id if user else None, actor=user.username if user else None,
        target=f"identity {who.issuer} {who.subject}",
        detail={"method": "openid-connect", "issuer": who.issuer, "subject": who.subject,
                "assurance": who.assurance.code, "missing": withheld},
    )  # fmt: skip
    session.commit()
    return SignInRefused(
        403,
        "your sign-in is not sure enough for what you hold at this factory: "
        + "; ".join(withheld)
        + ". Sign in again through an identity (or with a second factor) that provides it; "
        "your institution's or the platform's help desk can say how",
    )


def sign_in(
    session: Session,
    who: FederatedIdentity,
    now: datetime,
    token_days: int,
    rules: AssuranceRules = NO_RULES,
    entitlements: EntitlementScheme | None = None,
) -> SignedIn:
    """Match (by issuer and subject, over all linked identities) or create the person,
    bring the memberships their entitlements manage up to date, check the sign-in's
    assurance against `rules` for every role they then hold (SignInRefused, 403, naming
    what is missing, with nothing kept), issue their session's token and record the
    sign-in in the audit trail; all committed together."""
    org = _organisation(session, who.organisation_domain)
    row = _by_subject(session, who)
    plan = _plan(session, row, who, entitlements)
    withheld = _withheld(session, row, plan, rules, who, now)
    if withheld:
        raise _refuse(session, row, who, now, withheld)
    created = row is None
    if row is None:
        row = _create_user(session, who, org)
    else:
        # The provider is the source of truth for name and address; the username stays.
        row.full_name = who.full_name
        if row.email != who.email and not _email_taken(session, who.email, row.id):
            row.email = who.email
        if row.organisation_id is None and org is not None:
            row.organisation_id = org.id
    session.flush()
    identity = by_identity(session, who.issuer, who.subject) or _add_identity(
        session, row, who.issuer, who.subject, who.email, now
    )
    identity.email, identity.last_sign_in_at = who.email, now
    changed = _apply(session, row, plan, who, entitlements, now)
    session.flush()
    lineage = TokenLineage(who.assurance.code, identity.id)
    token = issue_token(
        session,
        row.id,
        TokenDraft(name=SESSION_TOKEN_NAME, expires_in_days=SESSION_TOKEN_DAYS),
        now,
        token_days,
        lineage=lineage,
    )
    current_org = session.get(OrganisationRow, row.organisation_id) if row.organisation_id else None
    audit.record(
        session,
        action=AuditAction.SIGN_IN,
        at=now,
        actor_id=row.id,
        actor=row.username,
        target=f"user:{row.username}",
        detail={
            "method": "openid-connect",
            "issuer": who.issuer,
            "subject": who.subject,
            "new_user": created,
            "organisation_claim": who.organisation_domain,
            "token": token.key,
            "assurance": who.assurance.code,
            "identity": identity.id,
            "memberships": changed,
        },
    )
    projects = len(session.scalars(select(MembershipRow.project_id).where(
        MembershipRow.user_id == row.id)).all())  # fmt: skip
    session.commit()
    return SignedIn(
        user_id=row.id,
        username=row.username,
        full_name=row.full_name,
        created=created,
        organisation=current_org.name if current_org else None,
        claimed_domain=who.organisation_domain,
        projects=projects,
        session_token=token.token,
        assurance=who.assurance.code,
    )
