"""Publishing, reading and accepting terms of use. Admins publish the factory's terms, a
site's operators (or admins) the site's; anyone signed in reads them and accepts; every
publication and acceptance is on the audit trail with its time and version."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fabriek.domain.audit import AuditAction
from fabriek.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from fabriek.domain.roles import Principal
from fabriek.domain.terms import (
    FACTORY,
    Acceptance,
    Terms,
    TermsDraft,
    TermsStatus,
    TermsVersion,
    floor_version,
    may_accept,
    pending_version,
)
from fabriek.services import audit
from fabriek.services.identity.permissions import may_operate_site
from fabriek.services.transactions import clash_is_conflict
from fabriek.store.tables import SiteRow, TermsAcceptanceRow, TermsRow, UserRow


def _terms(row: TermsRow, publisher: str | None) -> Terms:
    return Terms(
        scope=row.scope,
        version=row.version,
        title=row.title,
        body=row.body,
        requires_acceptance=row.requires_acceptance,
        published_at=row.published_at,
        published_by=publisher,
    )


def _require_publisher(session: Session, who: Principal, scope: str) -> None:
    if scope == FACTORY:
        if not who.is_admin:
            raise Forbidden("only an admin may publish the factory's terms of use")
        return
    if session.scalar(select(SiteRow.id).where(SiteRow.name == scope)) is None:
        raise InvalidInput.on("scope", f'no site named {scope!r}: give "factory" or a site')
    if not may_operate_site(who, scope):
        raise Forbidden(f"only an admin or an operator of site {scope} may publish its terms")


def publish(session: Session, who: Principal, draft: TermsDraft, now: datetime) -> Terms:
    """Publish the next version of `draft.scope`'s terms (numbered from 1); from `now` on,
    work there needs it accepted when it `requires_acceptance`."""
    _require_publisher(session, who, draft.scope)
    newest = session.scalar(select(func.max(TermsRow.version)).where(TermsRow.scope == draft.scope))
    row = TermsRow(
        scope=draft.scope,
        version=(newest or 0) + 1,
        title=draft.title,
        body=draft.body,
        requires_acceptance=draft.requires_acceptance,
        published_by=who.user_id,
        published_at=now,
    )
    with clash_is_conflict(
        session, f"another version of {draft.scope}'s terms was published just now; try again"
    ):
        session.add(row)
        session.flush()
        audit.record_as(
            session, who, AuditAction.TERMS_PUBLISH, now, target=f"terms {row.scope}",
            detail={"scope": row.scope, "version": row.version, "title": row.title,
                    "requires_acceptance": row.requires_acceptance},
        )  # fmt: skip
        session.commit()
    return _terms(row, who.username)


def _publisher_names(session: Session, rows: list[TermsRow]) -> dict[int, str]:
    ids = {r.published_by for r in rows if r.published_by is not None}
    if not ids:
        return {}
    found = session.execute(select(UserRow.id, UserRow.username).where(UserRow.id.in_(ids)))
    return {user_id: name for user_id, name in found}


def newest_of_each(session: Session) -> list[Terms]:
    """The newest version of every scope's terms, the factory's first, then by site."""
    newest = (
        select(TermsRow.scope, func.max(TermsRow.version).label("version"))
        .group_by(TermsRow.scope)
        .subquery()
    )
    rows = list(
        session.scalars(
            select(TermsRow).join(
                newest, (TermsRow.scope == newest.c.scope) & (TermsRow.version == newest.c.version)
            )
        )
    )
    rows.sort(key=lambda r: (r.scope != FACTORY, r.scope))
    names = _publisher_names(session, rows)
    return [_terms(r, names.get(r.published_by or 0)) for r in rows]


def get_terms(session: Session, scope: str, version: int | None = None) -> Terms:
    """One version of a scope's terms (None: the newest)."""
    query = select(TermsRow).where(TermsRow.scope == scope)
    query = (
        query.where(TermsRow.version == version)
        if version is not None
        else query.order_by(TermsRow.version.desc()).limit(1)
    )
    row = session.scalar(query)
    if row is None:
        raise NotFound("terms", scope if version is None else f"{scope} version {version}")
    return _terms(row, _publisher_names(session, [row]).get(row.published_by or 0))


def status_of(session: Session, who: Principal) -> list[TermsStatus]:
    """Where the caller stands with every scope's terms: the newest version, what they
    accepted last and when, and whether they must accept before working there."""
    mine: dict[str, tuple[int, datetime]] = {}
    for scope, version, at in session.execute(
        select(TermsRow.scope, TermsRow.version, TermsAcceptanceRow.accepted_at)
        .join(TermsAcceptanceRow, TermsAcceptanceRow.terms_id == TermsRow.id)
        .where(TermsAcceptanceRow.user_id == who.user_id)
    ):
        if scope not in mine or version > mine[scope][0]:
            mine[scope] = (version, at)
    versions: dict[str, list[TermsVersion]] = {}
    for scope, version, requires in session.execute(
        select(TermsRow.scope, TermsRow.version, TermsRow.requires_acceptance)
    ):
        versions.setdefault(scope, []).append(TermsVersion(scope, version, requires))
    answer = []
    for newest in newest_of_each(session):
        last = mine.get(newest.scope)
        accepted = {last[0]} if last else set()
        answer.append(
            TermsStatus(
                scope=newest.scope,
                newest_version=newest.version,
                title=newest.title,
                requires_acceptance=floor_version(versions[newest.scope]) is not None,
                accepted_version=last[0] if last else None,
                accepted_at=last[1] if last else None,
                pending=pending_version(versions[newest.scope], accepted) is not None,
            )
        )
    return answer


def accept(
    session: Session, who: Principal, scope: str, version: int | None, now: datetime
) -> Acceptance:
    """Record that the caller accepts `version` (None: the newest) of `scope`'s terms.
    Accepting a version again answers the first acceptance; a version that a later one
    requiring acceptance superseded is refused (accept the newer one)."""
    rows = list(session.scalars(select(TermsRow).where(TermsRow.scope == scope)))
    if not rows:
        raise NotFound("terms", scope)
    chosen = version if version is not None else max(r.version for r in rows)
    row = next((r for r in rows if r.version == chosen), None)
    if row is None:
        raise NotFound("terms", f"{scope} version {chosen}")
    published = [TermsVersion(r.scope, r.version, r.requires_acceptance) for r in rows]
    if not may_accept(published, chosen):
        newest = max(r.version for r in rows)
        raise Conflict(
            f"version {chosen} of {scope}'s terms is superseded by a version that must be "
            f"accepted: read and accept version {newest} "
            f"(`fabriek terms accept {scope} {newest}`)"
        )
    before = session.scalar(
        select(TermsAcceptanceRow.accepted_at).where(
            TermsAcceptanceRow.user_id == who.user_id, TermsAcceptanceRow.terms_id == row.id
        )
    )
    if before is not None:
        return Acceptance(scope=scope, version=chosen, user=who.username, accepted_at=before)
    with clash_is_conflict(session, f"you accepted {scope}'s terms just now; ask again"):
        session.add(TermsAcceptanceRow(user_id=who.user_id, terms_id=row.id, accepted_at=now))
        audit.record_as(
            session, who, AuditAction.TERMS_ACCEPT, now, target=f"terms {scope}",
            detail={"scope": scope, "version": chosen, "title": row.title},
        )  # fmt: skip
        session.commit()
    return Acceptance(scope=scope, version=chosen, user=who.username, accepted_at=now)
