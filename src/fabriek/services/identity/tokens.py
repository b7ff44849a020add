"""Who is calling: personal API tokens and the principal they stand for.

Routes never see how a caller signed in: they get a `Principal`. A later OpenID Connect
sign-in (SURFconext, eduGAIN) maps its subject to a user and calls `principal_for_user`.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Integer, Result, String, literal, select, union_all
from sqlalchemy.orm import Session

from fabriek.domain.audit import AuditAction
from fabriek.domain.errors import NotFound, Unauthenticated
from fabriek.domain.identity import tokens
from fabriek.domain.identity.people import NewTokenInfo, TokenDraft, TokenInfo
from fabriek.domain.roles import Principal, Role
from fabriek.services import audit
from fabriek.store.tables import (
    ApiTokenRow,
    InstallationRow,
    MembershipRow,
    StaffRoleRow,
    UserRow,
)
from fabriek.store.watch import TableWatch


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
    return authenticate_until(session, presented, now)[0]


def authenticate_until(
    session: Session, presented: str, now: datetime
) -> tuple[Principal, datetime | None]:
    """The principal behind a bearer token and when the token expires (None: never), or
    Unauthenticated with the reason."""
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
        raise Unauthenticated(
            "the token is not valid: make a new one on the portal's tokens page (/tokens) "
            "or ask your hub, and sign in with it: `fabriek login`"
        )
    _hash, expires_at, revoked_at, user_id, username = found
    if not tokens.is_usable(expires_at, revoked_at, now):
        raise Unauthenticated("the token has expired or was revoked: create a new one")
    return principal_for_user(session, user_id, username), expires_at


# What a principal is made of: a change to any of these tables may change who a token is.
PRINCIPAL_TABLES = ("api_tokens", "users", "staff_roles", "memberships")


@dataclass(frozen=True)
class _Cached:
    principal: Principal
    expires_at: datetime | None
    generation: int
    read_at: float  # time.monotonic()


class PrincipalCache:
    """Principals of recently presented bearer tokens, keyed by the token's SHA-256.

    Authenticating reads the token and the caller's roles (two queries); a client that
    submits hundreds of jobs a second presents the same token each time. An entry is used
    for at most `ttl_s` seconds, and only while the token has not expired (checked against
    the request's clock every time). Writes made through this process's engine to tokens,
    users, staff roles or memberships (revoking a token, adding a member) drop every entry
    at once (`TableWatch`); the same writes made by another process (another API worker,
    a `fabriek` command on the store) are seen within `ttl_s`.
    """

    def __init__(self, watch: TableWatch | None = None, ttl_s: float = 5.0) -> None:
        self.watch = watch
        self.ttl_s = ttl_s
        self.max_entries = 10_000
        self._entries: dict[str, _Cached] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(presented: str) -> str:
        return hashlib.sha256(presented.encode()).hexdigest()

    def get(self, presented: str, now: datetime) -> Principal | None:
        """The cached principal of this token, if still good."""
        if self.watch is None or self.ttl_s <= 0:
            return None
        found = self._entries.get(self.key(presented))
        if (
            found is None
            or found.generation != self.watch.generation
            or time.monotonic() - found.read_at > self.ttl_s
            or not tokens.is_usable(found.expires_at, None, now)
        ):
            return None
        return found.principal

    def authenticate(self, session: Session, presented: str, now: datetime) -> Principal:
        """`authenticate`, keeping the answer when no watched write came in between."""
        if self.watch is None or self.ttl_s <= 0:
            return authenticate(session, presented, now)
        stamp = self.watch.stamp()
        read_at = time.monotonic()
        who, expires_at = authenticate_until(session, presented, now)
        if stamp is not None and self.watch.unchanged(stamp):
            with self._lock:
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
                self._entries[self.key(presented)] = _Cached(who, expires_at, stamp, read_at)
        return who

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


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
    owner = session.get(UserRow, user_id)
    audit.record(
        session, action=AuditAction.TOKEN_ISSUE, at=now, actor_id=user_id,
        actor=owner.username if owner is not None else None, target=f"token {new.key}",
        detail={"name": draft.name, "expires_at": row.expires_at},
    )  # fmt: skip
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
        audit.record(
            session, action=AuditAction.TOKEN_REVOKE, at=row.revoked_at, actor_id=who.user_id,
            actor=who.username, target=f"token {key}", detail={"name": row.name},
        )  # fmt: skip
        session.commit()
    return _info(row)


def installation_id(session: Session) -> str:
    """This factory's identity, made by the first migration of its store."""
    found = session.scalars(select(InstallationRow.id)).first()
    if found is None:  # pragma: no cover - the migration always writes it
        raise NotFound("installation", "row")
    return found
