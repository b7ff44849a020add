"""Calls for proposals: opened by the access team on a configured track, listed to everyone."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from fabriek.domain.access.calls import Call, CallDraft, is_open
from fabriek.domain.access.tracks import AccessConfig
from fabriek.domain.errors import Forbidden, NotFound
from fabriek.domain.inputs import is_id
from fabriek.domain.roles import Principal, Role
from fabriek.services import audit
from fabriek.services.paging import Page, PageRequest, fetch_page
from fabriek.services.transactions import clash_is_conflict
from fabriek.store.tables import CallRow


def runs_calls(who: Principal) -> bool:
    """The access team and admins run calls: checks, reviewer assignments, decisions."""
    return who.is_admin or who.has_role(Role.ACCESS_TEAM)


def to_call(row: CallRow, access: AccessConfig, now: datetime) -> Call:
    """The call as shown at `now`. A track since removed from the configuration still
    shows under its code."""
    track = access.tracks.get(row.track)
    return Call(
        id=row.id,
        code=row.code,
        title=row.title,
        description=row.description,
        track=row.track,
        track_name=track.name if track else row.track,
        opens_at=row.opens_at,
        closes_at=row.closes_at,
        open=is_open(row.opens_at, row.closes_at, now),
        created_at=row.created_at,
    )


def call_row(session: Session, ref: str) -> CallRow:
    """The call with this id or code; NotFound otherwise. Calls are public to signed-in users."""
    query = select(CallRow)
    query = query.where(CallRow.id == int(ref)) if is_id(ref) else query.where(CallRow.code == ref)
    row = session.scalars(query).first()
    if row is None:
        raise NotFound("call", ref)
    return row


def create_call(
    session: Session, who: Principal, draft: CallDraft, access: AccessConfig, now: datetime
) -> Call:
    """Open a call on a configured track (the access team, admins)."""
    if not runs_calls(who):
        raise Forbidden("only the access team or an admin may open a call")
    access.track(draft.track)
    row = CallRow(
        code=draft.code,
        title=draft.title,
        description=draft.description,
        track=draft.track,
        opens_at=draft.opens_at,
        closes_at=draft.closes_at,
        created_at=now,
    )
    with clash_is_conflict(session, f"a call with code {draft.code!r} already exists"):
        session.add(row)
        audit.record_admin(
            session, who, now, "call-open", target=f"call {draft.code}", track=draft.track,
            opens_at=draft.opens_at, closes_at=draft.closes_at,
        )  # fmt: skip
        session.commit()
    return to_call(row, access, now)


def get_call(session: Session, ref: str, access: AccessConfig, now: datetime) -> Call:
    return to_call(call_row(session, ref), access, now)


def list_calls(
    session: Session,
    page: PageRequest,
    access: AccessConfig,
    now: datetime,
    track: str | None = None,
    open_only: bool = False,
) -> Page[Call]:
    """Calls, newest opening first; `open_only` keeps those taking proposals at `now`."""
    query = select(CallRow).order_by(CallRow.opens_at.desc(), CallRow.id.desc())
    if track:
        query = query.where(CallRow.track == track)
    if open_only:
        query = query.where(
            CallRow.opens_at <= now, or_(CallRow.closes_at.is_(None), CallRow.closes_at > now)
        )
    rows, total = fetch_page(session, query, page)
    return Page([to_call(r, access, now) for r in rows], total, page.limit, page.offset)
