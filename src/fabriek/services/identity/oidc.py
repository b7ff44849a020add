"""Signing in through an OpenID Connect provider: the sign-ins under way, and matching or
creating the person it vouches for.

A person is matched by (issuer, subject) only, never by username or e-mail: those can be
chosen or changed at the provider, the subject cannot. Someone new gets a user with a
unique username, their e-mail and name, and their organisation when its domain is known.
Each sign-in ends with a personal API token for the portal's session cookie, written with
its audit entry in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import chain

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fabriek.domain.audit import AuditAction
from fabriek.domain.identity.oidc import FederatedIdentity, LoginSecrets, username_candidates
from fabriek.domain.identity.people import TokenDraft
from fabriek.services import audit
from fabriek.services.identity.oidc_client import SignInRefused
from fabriek.services.identity.tokens import issue_token
from fabriek.store.tables import MembershipRow, OidcLoginRow, OrganisationRow, UserRow

# How long a person may take at the provider's login page before the sign-in is void.
LOGIN_TTL = timedelta(minutes=10)
# The token behind the portal's session cookie: a day at most, and never shown to anyone.
SESSION_TOKEN_NAME = "portal sign-in (OpenID Connect)"
SESSION_TOKEN_DAYS = 1
# Attempts at a free username when others sign in with the same name at the same moment.
_USERNAME_ATTEMPTS = 5


@dataclass(frozen=True)
class PendingLogin:
    """A sign-in taken back at the callback: its secrets and where to go afterwards."""

    secrets: LoginSecrets
    next_path: str


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


def begin_login(session: Session, secrets: LoginSecrets, next_path: str, now: datetime) -> None:
    """Keep a sign-in's secrets until its callback (and clear out abandoned ones)."""
    session.execute(delete(OidcLoginRow).where(OidcLoginRow.created_at < now - LOGIN_TTL))
    session.add(
        OidcLoginRow(
            state=secrets.state,
            nonce=secrets.nonce,
            code_verifier=secrets.code_verifier,
            next_path=next_path[:500],
            created_at=now,
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
                   OidcLoginRow.created_at)
    ).first()  # fmt: skip
    session.commit()
    if found is None:
        raise SignInRefused(
            400,
            "this sign-in is unknown or was finished already: start again from the sign-in page",
        )
    nonce, verifier, next_path, created_at = found
    if created_at < now - LOGIN_TTL:
        raise SignInRefused(
            400, "this sign-in took longer than 10 minutes: start again from the sign-in page"
        )
    return PendingLogin(LoginSecrets(state, nonce, verifier), next_path)


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
        raise SignInRefused(
            409,
            f"an account with the e-mail address {who.email} already exists here but was "
            "never signed in through your institution: ask the factory's operator to link them",
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


def _by_subject(session: Session, who: FederatedIdentity) -> UserRow | None:
    return session.scalar(
        select(UserRow).where(UserRow.oidc_issuer == who.issuer, UserRow.oidc_sub == who.subject)
    )


def sign_in(session: Session, who: FederatedIdentity, now: datetime, token_days: int) -> SignedIn:
    """Match (by issuer and subject) or create the person, issue their session's token and
    record the sign-in in the audit trail; all committed together."""
    org = _organisation(session, who.organisation_domain)
    row = _by_subject(session, who)
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
    token = issue_token(
        session,
        row.id,
        TokenDraft(name=SESSION_TOKEN_NAME, expires_in_days=SESSION_TOKEN_DAYS),
        now,
        token_days,
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
    )
