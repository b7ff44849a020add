"""Who is calling: personal API tokens and the principal they stand for.

Routes never see how a caller signed in: they get a `Principal`. A later OpenID Connect
sign-in (SURFconext, eduGAIN) maps its subject to a user and calls `principal_for_user`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Integer, Result, String, literal, select, union_all
from sqlalchemy.orm import Session

from fabriek.domain import tokens
from fabriek.domain.errors import NotFound, Unauthenticated
from fabriek.domain.people import NewTokenInfo, TokenDraft, TokenInfo
from fabriek.domain.roles import Principal, Role
from fabriek.store.tables import (
    ApiTokenRow,
    InstallationRow,
    MembershipRow,
    StaffRoleRow,
    UserRow,
)


def principal_for_user(session: Session, user_id: int, username: str) -> Principal:
    """The caller's roles, read once per request in one round trip: staff roles (with their
    scope) and project memberships (with the project id) as one union."""
    staff = select(
        StaffRoleRow.role, StaffRoleRow.scope, literal(None, Integer).label("project_id")
    ).where(StaffRoleRow.user_id == user_id)
    member = select(
        MembershipRow.role, literal(None, String).label("scope"), MembershipRow.project_id
    ).where(MembershipRow.user_id == user_id)
    result: Result[str, str | None, int | None] = session.execute(union_all(staff, member))
    rows: list[tuple[str, str | None, int | None]] = [(r[0], r[1], r[2]) for r in result]
    return Principal(
        user_id=user_id,
        username=username,
        staff_roles=frozenset((Role(r), s) for r, s, p in rows if p is None),
        project_roles={p: Role(r) for r, _s, p in rows if p is not None},
    )


def authenticate(session: Session, presented: str, now: datetime) -> Principal:
    """The principal behind a bearer token, or Unauthenticated with the reason."""
    key = tokens.token_key(presented)
    if key is None:
        raise Unauthenticated("the token is malformed: it should look like fbk_<key>_<secret>")
    found = session.execute(
        select(ApiTokenRow.token_hash, ApiTokenRow.expires_at, ApiTokenRow.revoked_at,
               UserRow.id, UserRow.username)
        .join(UserRow, UserRow.id == ApiTokenRow.user_id)
        .where(ApiTokenRow.key == key)
    ).first()  # fmt: skip
    if found is None or not tokens.token_matches(presented, found[0]):
        raise Unauthenticated("the token is not valid: create a new one with `fabriek login`")
    _hash, expires_at, revoked_at, user_id, username = found
    if not tokens.is_usable(expires_at, revoked_at, now):
        raise Unauthenticated("the token has expired or was revoked: create a new one")
    return principal_for_user(session, user_id, username)


def _info(row: ApiTokenRow) -> TokenInfo:
    return TokenInfo(
        key=row.key,
        name=row.name,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


def issue_token(
    session: Session,
    user_id: int,
    draft: TokenDraft,
    now: datetime,
    default_days: int,
    fixed: tokens.NewToken | None = None,
) -> NewTokenInfo:
    """A new token for a user; its secret is returned this once and never stored."""
    new = fixed or tokens.make_token()
    days = draft.expires_in_days or default_days
    row = ApiTokenRow(
        key=new.key,
        user_id=user_id,
        name=draft.name,
        token_hash=new.hash,
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    session.add(row)
    session.flush()
    return NewTokenInfo(token=new.token, **_info(row).model_dump())


def list_tokens(session: Session, who: Principal) -> list[TokenInfo]:
    rows = session.scalars(
        select(ApiTokenRow)
        .where(ApiTokenRow.user_id == who.user_id)
        .order_by(ApiTokenRow.created_at)
    )
    return [_info(r) for r in rows]


def revoke_token(
    session: Session, who: Principal, key: str, now: datetime | None = None
) -> TokenInfo:
    """Revoke one of the caller's own tokens; someone else's is 'not found'."""
    row = session.get(ApiTokenRow, key)
    if row is None or row.user_id != who.user_id:
        raise NotFound("token", key)
    if row.revoked_at is None:
        row.revoked_at = now or datetime.now(UTC)
        session.commit()
    return _info(row)


def installation_id(session: Session) -> str:
    """This factory's identity, made by the first migration of its store."""
    found = session.scalars(select(InstallationRow.id)).first()
    if found is None:  # pragma: no cover - the migration always writes it
        raise NotFound("installation", "row")
    return found
