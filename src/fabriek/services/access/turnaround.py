"""The turnaround promise: each track promises a decision within so many working days of
the call's cut-off; a proposal whose clock breaks it is flagged to the access team, once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.access.proposals import CLOCK_RUNNING, turnaround
from fabriek.domain.access.tracks import AccessConfig, Track
from fabriek.domain.roles import Role
from fabriek.services.notifications.inbox import notify, notify_once, staff_with_role
from fabriek.store.tables import CallRow, ProposalRow

# --- the turnaround promise ------------------------------------------------------------------


def flag_if_breached(
    session: Session, row: ProposalRow, call: CallRow, track: Track, now: datetime
) -> bool:
    """Tell the access team, once, that this proposal's clock has broken the track's
    promise. Not committed: it lands with the caller's change."""
    if row.breach_flagged_at is not None:
        return False
    clock = turnaround(track, call.closes_at, row.submitted_at, row.decided_at, now)
    if not clock.breached or not notify_once(session, f"breach:proposal:{row.id}", now):
        return False
    row.breach_flagged_at = now
    due = f"{clock.due_at:%Y-%m-%d}" if clock.due_at else "?"
    notify(
        session,
        staff_with_role(session, Role.ACCESS_TEAM),
        "turnaround-breach",
        f"Proposal {row.id} broke the {track.name} track's promise of "
        f"{track.decision_working_days} working days",
        f"{row.title} (call {call.code}) was due a decision by {due}; "
        f"{clock.used_working_days} working days used so far.",
        now,
        link=f"/proposals/{row.id}",
    )
    return True


def flag_turnaround_breaches(session: Session, now: datetime, access: AccessConfig) -> int:
    """Flag every undecided proposal whose turnaround clock has run past its track's
    promise to the access team, once each; commits; how many were flagged now. Meant for a
    periodic cycle (decisions flag their own late breach)."""
    found = session.execute(
        select(ProposalRow, CallRow)
        .join(CallRow, CallRow.id == ProposalRow.call_id)
        .where(
            ProposalRow.state.in_([s.value for s in CLOCK_RUNNING]),
            ProposalRow.breach_flagged_at.is_(None),
        )
        .order_by(ProposalRow.id)
    ).all()
    flagged = 0
    for row, call in found:
        track = access.tracks.get(call.track)
        if track is not None and flag_if_breached(session, row, call, track, now):
            flagged += 1
    session.commit()
    return flagged
