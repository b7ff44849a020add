"""Endpoint API keys of a project: create (shown once, stored hashed), list, revoke, each on
the audit trail; the facts the gateway needs of a presented key; usage per key and day."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fabriek.domain.audit import AuditAction
from fabriek.domain.endpoint_keys import (
    EndpointKeyDraft,
    EndpointKeyInfo,
    EndpointUsage,
    NewEndpointKey,
)
from fabriek.domain.errors import Forbidden, InvalidInput, NotFound
from fabriek.domain.gateway import KEY_START, PREFIX_CHARS, KeyFacts, hash_key
from fabriek.domain.inputs import is_id
from fabriek.domain.roles import Principal
from fabriek.services import audit
from fabriek.services.identity.projects import may_see_project, visible_projects
from fabriek.store.tables import ProjectRow
from fabriek.store.tables.endpoints import EndpointKeyRow, EndpointRow, EndpointUsageRow

_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def member_project(session: Session, who: Principal, ref: str, manage: bool = True) -> ProjectRow:
    """The project `ref` names, for its members and admins (and, when not `manage`, anyone
    who may see it): whoever may not see it is told it does not exist; who may see but is
    no member, that they may not manage its keys."""
    query = select(ProjectRow)
    row = session.scalars(
        query.where(ProjectRow.id == int(ref))
        if is_id(ref)
        else query.where(ProjectRow.name == ref)
    ).first()
    if row is None or not may_see_project(session, who, row.id):
        raise NotFound("project", ref)
    if manage and not who.is_admin and row.id not in who.project_roles:
        raise Forbidden(f"only members of {row.name} manage its endpoint keys")
    return row


def _endpoint_names(session: Session, project_id: int) -> dict[int, str]:
    rows = session.execute(
        select(EndpointRow.id, EndpointRow.name).where(EndpointRow.project_id == project_id)
    ).all()
    return {i: n for i, n in rows}


def _info(row: EndpointKeyRow, project: str, names: dict[int, str]) -> EndpointKeyInfo:
    return EndpointKeyInfo(
        id=row.id, project=project, name=row.name, prefix=row.prefix,
        endpoints=None if row.endpoint_ids is None
        else [names.get(i, str(i)) for i in row.endpoint_ids],
        requests_per_minute=row.requests_per_minute, tokens_per_minute=row.tokens_per_minute,
        tokens_per_month=row.tokens_per_month, created_at=row.created_at,
        expires_at=row.expires_at, revoked_at=row.revoked_at, last_used_at=row.last_used_at,
    )  # fmt: skip


def create_key(
    session: Session, who: Principal, project: str, draft: EndpointKeyDraft, now: datetime
) -> NewEndpointKey:
    """A new key for the project's endpoints (all, or those named), returned with its secret
    this once; only its SHA-256 is stored. Commits."""
    row_p = member_project(session, who, project)
    names = _endpoint_names(session, row_p.id)
    ids: list[int] | None = None
    if draft.endpoints is not None:
        by_name = {n: i for i, n in names.items()}
        unknown = [e for e in draft.endpoints if e not in by_name]
        if unknown:
            raise InvalidInput(f"{row_p.name} has no endpoint {', '.join(unknown)}")
        ids = sorted({by_name[e] for e in draft.endpoints})
    if draft.expires_at is not None and draft.expires_at.astimezone(UTC) <= now:
        raise InvalidInput("the key would expire before it is used: give a time ahead")
    prefix = KEY_START + "".join(secrets.choice(_ALPHABET) for _ in range(PREFIX_CHARS))
    key = f"{prefix}_{secrets.token_urlsafe(32)}"
    row = EndpointKeyRow(
        project_id=row_p.id, name=draft.name, prefix=prefix, secret_hash=hash_key(key),
        endpoint_ids=ids, requests_per_minute=draft.requests_per_minute,
        tokens_per_minute=draft.tokens_per_minute, tokens_per_month=draft.tokens_per_month,
        created_by=who.user_id, created_at=now, expires_at=draft.expires_at,
    )  # fmt: skip
    session.add(row)
    session.flush()
    audit.record_as(
        session, who, AuditAction.ENDPOINT_KEY_CREATE, now, project_id=row_p.id,
        target=f"endpoint-key:{row.id}", detail={"name": draft.name, "prefix": prefix},
    )  # fmt: skip
    session.commit()
    info = _info(row, row_p.name, names)
    return NewEndpointKey(**info.model_dump(), key=key)


def list_keys(
    session: Session, who: Principal, project: str, include_revoked: bool = False
) -> list[EndpointKeyInfo]:
    """The project's keys, newest first (revoked ones too when asked)."""
    row_p = member_project(session, who, project)
    names = _endpoint_names(session, row_p.id)
    query = select(EndpointKeyRow).where(EndpointKeyRow.project_id == row_p.id)
    if not include_revoked:
        query = query.where(EndpointKeyRow.revoked_at.is_(None))
    rows = session.scalars(query.order_by(EndpointKeyRow.id.desc()))
    return [_info(r, row_p.name, names) for r in rows]


def revoke_key(
    session: Session, who: Principal, project: str, key: str, now: datetime
) -> EndpointKeyInfo:
    """Revoke a key (by id, prefix or name); the gateway refuses it within its cache's
    lifetime (`KEY_TTL_S`). Revoking a revoked key changes nothing. Commits."""
    row_p = member_project(session, who, project)
    query = select(EndpointKeyRow).where(EndpointKeyRow.project_id == row_p.id)
    match = (
        EndpointKeyRow.id == int(key) if is_id(key)
        else (EndpointKeyRow.prefix == key) | (EndpointKeyRow.name == key)
    )  # fmt: skip
    rows = list(
        session.scalars(query.where(match).order_by(EndpointKeyRow.revoked_at.is_not(None)))
    )
    if not rows:
        raise NotFound("endpoint key", key)
    row = rows[0]
    if row.revoked_at is None:
        row.revoked_at = now
        audit.record_as(
            session, who, AuditAction.ENDPOINT_KEY_REVOKE, now, project_id=row_p.id,
            target=f"endpoint-key:{row.id}", detail={"name": row.name, "prefix": row.prefix},
        )  # fmt: skip
        session.commit()
    return _info(row, row_p.name, _endpoint_names(session, row_p.id))


def month_start(now: datetime) -> date:
    return now.date().replace(day=1)


def key_facts(session: Session, presented: str, now: datetime) -> KeyFacts | None:
    """What the gateway needs of a presented key (None: no such key); with this month's
    tokens so far, for the monthly budget."""
    row = session.scalars(
        select(EndpointKeyRow).where(EndpointKeyRow.secret_hash == hash_key(presented))
    ).first()
    if row is None:
        return None
    used = 0
    if row.tokens_per_month is not None:
        used = int(
            session.scalar(
                select(
                    func.coalesce(
                        func.sum(
                            EndpointUsageRow.prompt_tokens + EndpointUsageRow.completion_tokens
                        ),
                        0,
                    )
                ).where(EndpointUsageRow.key_id == row.id, EndpointUsageRow.day >= month_start(now))
            )
            or 0
        )
    return KeyFacts(
        key_id=row.id, project_id=row.project_id,
        endpoint_ids=None if row.endpoint_ids is None else frozenset(row.endpoint_ids),
        requests_per_minute=row.requests_per_minute, tokens_per_minute=row.tokens_per_minute,
        tokens_per_month=row.tokens_per_month, expires_at=row.expires_at,
        revoked=row.revoked_at is not None, month_tokens=used,
    )  # fmt: skip


def usage(
    session: Session,
    who: Principal,
    project: str,
    since: date | None = None,
    until: date | None = None,
    key: str | None = None,
) -> list[EndpointUsage]:
    """The project's endpoint usage per caller, endpoint and day (UTC), oldest first;
    within [since, until] and of one key (id, prefix or name) when given."""
    row_p = member_project(session, who, project, manage=False)
    query = (
        select(EndpointUsageRow, EndpointRow.name, EndpointKeyRow.name)
        .join(EndpointRow, EndpointRow.id == EndpointUsageRow.endpoint_id)
        .outerjoin(EndpointKeyRow, EndpointKeyRow.id == EndpointUsageRow.key_id)
        .where(EndpointUsageRow.project_id == row_p.id)
    )
    if since is not None:
        query = query.where(EndpointUsageRow.day >= since)
    if until is not None:
        query = query.where(EndpointUsageRow.day <= until)
    if key is not None:
        query = query.where(
            EndpointKeyRow.id == int(key) if is_id(key)
            else (EndpointKeyRow.prefix == key) | (EndpointKeyRow.name == key)
        )  # fmt: skip
    rows = session.execute(query.order_by(EndpointUsageRow.day, EndpointUsageRow.id)).all()
    return [
        EndpointUsage(
            day=u.day,
            endpoint=endpoint,
            caller=u.caller,
            key_id=u.key_id,
            key_name=key_name,
            requests=u.requests,
            failed_requests=u.failed_requests,
            prompt_tokens=u.prompt_tokens,
            completion_tokens=u.completion_tokens,
        )
        for u, endpoint, key_name in rows
    ]


def member_projects(session: Session, who: Principal) -> list[str]:
    """The names of the caller's projects (every visible one for admins), sorted."""
    where = (
        visible_projects(who, ProjectRow.id)
        if who.is_admin
        else ProjectRow.id.in_(list(who.project_roles))
    )
    return list(session.scalars(select(ProjectRow.name).where(where).order_by(ProjectRow.name)))
