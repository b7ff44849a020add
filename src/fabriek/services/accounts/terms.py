"""Terms of use in the store: what a person must still accept, and the check every job
submission, dataset upload and SSH certificate passes first (`require_accepted`).

Publishing, reading and accepting terms are in `services/accounts/terms_publishing.py`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.terms import (
    FACTORY,
    PendingTerms,
    TermsNotAccepted,
    TermsVersion,
    pending_version,
    scopes_for,
)
from fabriek.store.tables import AllocationRow, TermsAcceptanceRow, TermsRow


def versions_of(
    session: Session, scopes: Iterable[str], now: datetime
) -> dict[str, list[TermsVersion]]:
    """Every version of each of `scopes` published by `now` (a scope with none is left
    out)."""
    found: dict[str, list[TermsVersion]] = defaultdict(list)
    for scope, version, requires in session.execute(
        select(TermsRow.scope, TermsRow.version, TermsRow.requires_acceptance).where(
            TermsRow.scope.in_(list(scopes)), TermsRow.published_at <= now
        )
    ):
        found[scope].append(TermsVersion(scope, version, requires))
    return dict(found)


def accepted_by(
    session: Session, user_ids: Collection[int], scopes: Iterable[str]
) -> dict[tuple[int, str], set[int]]:
    """The versions of each scope each of `user_ids` accepted."""
    accepted: dict[tuple[int, str], set[int]] = defaultdict(set)
    for user_id, scope, version in session.execute(
        select(TermsAcceptanceRow.user_id, TermsRow.scope, TermsRow.version)
        .join(TermsRow, TermsRow.id == TermsAcceptanceRow.terms_id)
        .where(TermsAcceptanceRow.user_id.in_(list(user_ids)), TermsRow.scope.in_(list(scopes)))
    ):
        accepted[(user_id, scope)].add(version)
    return accepted


def _titles(session: Session, keys: list[tuple[str, int]]) -> dict[tuple[str, int], str]:
    if not keys:
        return {}
    rows = session.execute(
        select(TermsRow.scope, TermsRow.version, TermsRow.title).where(
            TermsRow.scope.in_([s for s, _ in keys])
        )
    )
    wanted = set(keys)
    return {(s, v): t for s, v, t in rows if (s, v) in wanted}


def pending_terms(
    session: Session, user_id: int, scopes: Iterable[str], now: datetime
) -> tuple[PendingTerms, ...]:
    """The terms (of `scopes`, in that order) the person must still accept at `now`."""
    scopes = list(dict.fromkeys(scopes))
    versions = versions_of(session, scopes, now)
    if not versions:
        # No terms published: the common case of a factory that has none, one query.
        return ()
    accepted = accepted_by(session, [user_id], versions)
    missing = [
        (scope, version)
        for scope in scopes
        if scope in versions
        and (version := pending_version(versions[scope], accepted.get((user_id, scope), set())))
        is not None
    ]
    titles = _titles(session, missing)
    return tuple(PendingTerms(s, v, titles.get((s, v), "")) for s, v in missing)


def require_accepted(session: Session, user_id: int, site: str | None, now: datetime) -> None:
    """Refuse (TermsNotAccepted, HTTP 403 with links to the terms) unless the person has
    accepted the factory's current terms and, when `site` is given, that site's.

    Terms count from their publication: those published after `now` do not apply yet."""
    pending = pending_terms(session, user_id, scopes_for(site), now)
    if pending:
        raise TermsNotAccepted(pending)


def barred_sites(
    session: Session, user_ids: Collection[int], sites: Collection[str], now: datetime
) -> dict[int, frozenset[str]]:
    """For each of `user_ids` who may not work at some of `sites` yet, those sites: all of
    them while the factory's current terms are not accepted, else the sites whose own are
    not. People barred nowhere are left out."""
    scopes = [FACTORY, *sites]
    versions = versions_of(session, scopes, now)
    if not versions or not user_ids:
        return {}
    accepted = accepted_by(session, user_ids, versions)
    barred: dict[int, frozenset[str]] = {}
    for user_id in user_ids:
        missing = {
            scope
            for scope, published in versions.items()
            if pending_version(published, accepted.get((user_id, scope), set())) is not None
        }
        if FACTORY in missing:
            barred[user_id] = frozenset(sites)
        elif missing:
            barred[user_id] = frozenset(missing)
    return barred


def sites_by_user(
    session: Session, users: Mapping[int, str], sites: Collection[str], now: datetime
) -> dict[str, frozenset[str]]:
    """What the scheduler needs (`Snapshot.user_sites`): for each of `users` (id -> name)
    barred from some of `sites` by terms of use, the sites they may work at."""
    everywhere = frozenset(sites)
    return {
        users[user_id]: everywhere - barred
        for user_id, barred in barred_sites(session, list(users), sites, now).items()
    }


def require_accepted_for_job(
    session: Session,
    user_id: int,
    project_id: int,
    sites: Callable[[], Collection[str]],
    now: datetime,
) -> None:
    """`require_accepted` for a job submission: the factory's terms always, and a site's
    when the job can run at that site only (`sites()`: those that could run it, by hardware
    and its datasets' residency, narrowed here by its project's active allocations; asked
    only when some terms are published). A job that several sites could run is held by the
    scheduler at those whose terms are not accepted, and waits with that reason only if
    none is left."""
    if session.scalar(select(TermsRow.id).where(TermsRow.published_at <= now).limit(1)) is None:
        return  # no terms published anywhere: the common case, one query
    allowed = set(sites())
    granted = [
        set(names or [])
        for names in session.scalars(
            select(AllocationRow.sites).where(
                AllocationRow.project_id == project_id,
                AllocationRow.starts_at <= now,
                AllocationRow.ends_at > now,
            )
        )
    ]
    if granted and all(granted):
        allowed &= set().union(*granted)
    require_accepted(session, user_id, next(iter(allowed)) if len(allowed) == 1 else None, now)
