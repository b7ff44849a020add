"""Who is calling: personal API tokens and the principal they stand for.

Routes never see how a caller signed in: they get a `Principal`. A later OpenID Connect
sign-in (SURFconext, eduGAIN) maps its subject to a user and calls `principal_for_user`.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import Integer, Result, String, literal, select, union_all
from sqlalchemy.orm import Session

from fabriek.domain.audit import AuditAction
from fabriek.domain.errors import NotFound, Unauthenticated
from fabriek.domain.identity import tokens
from fabriek.domain.identity.assurance import NO_RULES, Assurance, AssuranceRules, shortfalls
from fabriek.domain.identity.people import NewTokenInfo, TokenDraft, TokenInfo
from fabriek.domain.roles import Principal, Role
from fabriek.services import audit
from fabriek.store.tables import (
    AllocationRow,
    ApiTokenRow,
    InstallationRow,
    MembershipRow,
    ProjectRow,
    StaffRoleRow,
    UserRow,
)
from fabriek.store.watch import TableWatch


def principal_for_user(
    session: Session,
    user_id: int,
    username: str,
    lineage: TokenLineage | None = None,
    rules: AssuranceRules = NO_RULES,
    now: datetime | None = None,
) -> Principal:
    """The caller's roles, read once per request in one round trip: staff roles (with their
    scope) and project memberships (with the project id) as one union. With `rules`, the
    roles the token's sign-in (`lineage`) did not meet the minimum of are withheld."""
    staff = select(
        StaffRoleRow.role, StaffRoleRow.scope, literal(None, Integer).label("project_id")
    ).where(StaffRoleRow.user_id == user_id)
    member = select(
        MembershipRow.role, literal(None, String).label("scope"), MembershipRow.project_id
    ).where(MembershipRow.user_id == user_id)
    result: Result[str, str | None, int | None] = session.execute(union_all(staff, member))
    rows: list[tuple[str, str | None, int | None]] = [(r[0], r[1], r[2]) for r in result]
    staff_roles = frozenset((Role(r), s) for r, s, p in rows if p is None)
    project_roles = {p: Role(r) for r, _s, p in rows if p is not None}
    lineage = lineage or TokenLineage()
    withheld: tuple[str, ...] = ()
    if rules and lineage.assurance is not None:
        staff_roles, project_roles, withheld = _gate(
            session, rules, lineage.assurance, staff_roles, project_roles, now or datetime.now(UTC)
        )
    return Principal(
        user_id=user_id,
        username=username,
        staff_roles=staff_roles,
        project_roles=project_roles,
        assurance=lineage.assurance,
        identity_id=lineage.identity_id,
        withheld=withheld,
    )


def _gate(
    session: Session,
    rules: AssuranceRules,
    code: str,
    staff_roles: frozenset[tuple[Role, str | None]],
    project_roles: dict[int, Role],
    now: datetime,
) -> tuple[frozenset[tuple[Role, str | None]], dict[int, Role], tuple[str, ...]]:
    """The roles a token whose sign-in had assurance `code` may use, and those it may not.
    Reads the store only when some role could fall short: for the tracks of the projects
    (when a track has a minimum), and the names of projects withheld (for the message)."""
    try:
        got = Assurance.from_code(code)
    except ValueError:
        got = Assurance()  # unreadable: as sure as no assurance at all
    if not rules.strictest.missing(got):
        return staff_roles, project_roles, ()
    tracks = project_tracks(session, rules, project_roles, now)
    short = shortfalls(
        rules, got, [r.value for r, _s in staff_roles],
        {str(p): (r.value, tracks.get(p, frozenset())) for p, r in project_roles.items()},
    )  # fmt: skip
    if not short:
        return staff_roles, project_roles, ()
    staff_short = {s.role for s in short if s.project is None}
    project_short = {int(s.project) for s in short if s.project is not None}
    names: dict[int, str] = {}
    if project_short:
        names = dict(session.execute(
            select(ProjectRow.id, ProjectRow.name).where(ProjectRow.id.in_(project_short))
        ).all())  # fmt: skip
    named = [replace(s, project=names.get(int(s.project), s.project)) if s.project else s
             for s in short]  # fmt: skip
    return (
        frozenset((r, s) for r, s in staff_roles if r.value not in staff_short),
        {p: r for p, r in project_roles.items() if p not in project_short},
        tuple(str(s) for s in named),
    )


def project_tracks(
    session: Session, rules: AssuranceRules, project_ids: Iterable[int], now: datetime
) -> dict[int, frozenset[str]]:
    """The tracks with a minimum of their own that these projects hold a current
    allocation on (no query when no track has one)."""
    ids = list(project_ids)
    if not ids or not rules.tracks:
        return {}
    found: dict[int, set[str]] = {}
    current = session.execute(
        select(AllocationRow.project_id, AllocationRow.track).where(
            AllocationRow.project_id.in_(ids),
            AllocationRow.track.in_(rules.tracks),
            AllocationRow.starts_at <= now,
            AllocationRow.ends_at > now,
        )
    )
    for project_id, track in current:
        found.setdefault(project_id, set()).add(track)
    return {p: frozenset(t) for p, t in found.items()}


@dataclass(frozen=True)
class TokenLineage:
    """The federated sign-in a token descends from: its assurance code and identity (both
    None for a token the operator made on the store)."""

    assurance: str | None = None
    identity_id: int | None = None

    @classmethod
    def of(cls, who: Principal) -> TokenLineage:
        """What a token made by `who` inherits from the token `who` presented."""
        return cls(who.assurance, who.identity_id)


# The tokens that proved good while one request was answered (their `proof_key`s), for the
# rate limits at the edge: a list the edge puts here before the request runs, appended to
# wherever a token is accepted (in a worker thread too: the thread's context copy holds the
# same list).
_PROVEN: ContextVar[list[str] | None] = ContextVar("fabriek_proven_tokens", default=None)


def proof_key(presented: bytes) -> str:
    """A token's name in memory-only tables (never the token itself)."""
    return hashlib.sha256(presented).hexdigest()[:32]


def collect_proofs() -> list[str]:
    """Start collecting, in this context, the tokens accepted from here on; the list fills
    as they are."""
    proofs: list[str] = []
    _PROVEN.set(proofs)
    return proofs


def _proved(presented: str) -> None:
    proofs = _PROVEN.get()
    if proofs is not None:
        proofs.append(proof_key(presented.encode()))


def authenticate(
    session: Session, presented: str, now: datetime, rules: AssuranceRules = NO_RULES
) -> Principal:
    """The principal behind a bearer token, or Unauthenticated with the reason; with
    `rules`, without the roles the token's sign-in did not meet the minimum of."""
    return authenticate_until(session, presented, now, rules)[0]


def authenticate_until(
    session: Session, presented: str, now: datetime, rules: AssuranceRules = NO_RULES
) -> tuple[Principal, datetime | None]:
    """The principal behind a bearer token and when the token expires (None: never), or
    Unauthenticated with the reason."""
    key = tokens.token_key(presented)
    if key is None:
        raise Unauthenticated("the token is malformed: it should look like fbk_<key>_<secret>")
    found = session.execute(
        select(ApiTokenRow.token_hash, ApiTokenRow.expires_at, ApiTokenRow.revoked_at,
               UserRow.id, UserRow.username, ApiTokenRow.assurance, ApiTokenRow.identity_id)
        .join(UserRow, UserRow.id == ApiTokenRow.user_id)
        .where(ApiTokenRow.key == key)
    ).first()  # fmt: skip
    if found is None or not tokens.token_matches(presented, found[0]):
        raise Unauthenticated(
            "the token is not valid: make a new one on the portal's tokens page (/tokens) "
            "or ask your hub, and sign in with it: `fabriek login`"
        )
    _hash, expires_at, revoked_at, user_id, username, assurance, identity_id = found
    if not tokens.is_usable(expires_at, revoked_at, now):
        raise Unauthenticated("the token has expired or was revoked: create a new one")
    _proved(presented)
    lineage = TokenLineage(assurance, identity_id)
    return principal_for_user(session, user_id, username, lineage, rules, now), expires_at


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
        _proved(presented)
        return found.principal

    def authenticate(
        self, session: Session, presented: str, now: datetime, rules: AssuranceRules = NO_RULES
    ) -> Principal:
        """`authenticate`, keeping the answer when no watched write came in between."""
        if self.watch is None or self.ttl_s <= 0:
            return authenticate(session, presented, now, rules)
        stamp = self.watch.stamp()
        read_at = time.monotonic()
        who, expires_at = authenticate_until(session, presented, now, rules)
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
    lineage: TokenLineage | None = None,
) -> NewTokenInfo:
    """A new token for a user; its secret is returned this once and never stored. A token
    made with another (`lineage`: `TokenLineage.of` its principal) keeps that one's
    assurance and identity, so a token can never be surer than the sign-in behind it."""
    new = fixed or tokens.make_token()
    days = draft.expires_in_days or default_days
    row = ApiTokenRow(
        key=new.key,
        user_id=user_id,
        name=draft.name,
        token_hash=new.hash,
        created_at=now,
        expires_at=now + timedelta(days=days),
        assurance=lineage.assurance if lineage else None,
        identity_id=lineage.identity_id if lineage else None,
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
