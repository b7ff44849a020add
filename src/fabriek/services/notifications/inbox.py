"""Notifications: messages to people, kept in the store, listed in the portal and the API,
and e-mailed (see `fabriek.services.notifications.mail`) at once or in a daily digest."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fabriek.domain.access.budgets import Budget, Notice, due_notices, superseded
from fabriek.domain.access.tracks import AccessConfig
from fabriek.domain.errors import InvalidInput, NotFound
from fabriek.domain.notifications import (
    Delivery,
    Notification,
    NotificationKind,
    NotificationSettings,
    NotificationSettingsUpdate,
)
from fabriek.domain.roles import Principal, Role
from fabriek.services.paging import Page, PageRequest, fetch_page
from fabriek.store.tables import (
    AllocationRow,
    MembershipRow,
    NoticeSentRow,
    NotificationRow,
    NotificationSettingsRow,
    ProjectRow,
    StaffRoleRow,
    UserRow,
)

KINDS = tuple(k.value for k in NotificationKind)
DELIVERIES = tuple(d.value for d in Delivery)
_NOTICES = frozenset(n.value for n in Notice)
_USED_NOTICES = frozenset({Notice.USED_50, Notice.USED_80, Notice.USED_100})


def notify(
    session: Session,
    user_ids: Iterable[int],
    kind: str,
    subject: str,
    body: str,
    now: datetime,
    link: str | None = None,
) -> int:
    """Leave one notification of `kind` (a `NotificationKind`) for each of `user_ids` (each
    person once); how many. Not committed: it lands with the change it tells about."""
    count = 0
    for user_id in sorted(set(user_ids)):
        session.add(
            NotificationRow(
                user_id=user_id,
                kind=kind,
                subject=subject[:300],
                body=body,
                link=link,
                created_at=now,
            )
        )
        count += 1
    return count


def notify_once(session: Session, key: str, now: datetime) -> bool:
    """Claim the once-only notice `key`: True for the first caller ever, False after. Two
    concurrent claimers cannot both win (the key is the table's primary key)."""
    if session.get(NoticeSentRow, key) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(NoticeSentRow(key=key[:100], at=now))
    except IntegrityError:
        return False
    return True


def staff_with_role(session: Session, role: Role) -> list[int]:
    """The users who hold a staff role (any scope): who an access-team notice goes to."""
    return list(
        session.scalars(
            select(StaffRoleRow.user_id).where(StaffRoleRow.role == role.value).distinct()
        )
    )


# --- one's own list ------------------------------------------------------------------------


def list_notifications(
    session: Session, who: Principal, page: PageRequest, unread: bool | None = None
) -> Page[Notification]:
    """The caller's notifications, newest first; `unread` True: only unread, False: only read.
    Nobody, not even an admin, lists someone else's: they are personal mail."""
    query = select(NotificationRow).where(NotificationRow.user_id == who.user_id)
    if unread is True:
        query = query.where(NotificationRow.read_at.is_(None))
    elif unread is False:
        query = query.where(NotificationRow.read_at.is_not(None))
    query = query.order_by(NotificationRow.created_at.desc(), NotificationRow.id.desc())
    rows, total = fetch_page(session, query, page)
    items = [Notification.model_validate(r) for r in rows]
    return Page(items, total, page.limit, page.offset)


def mark_read(
    session: Session, who: Principal, notification_id: int, now: datetime
) -> Notification:
    """Mark one of the caller's notifications read (again: keeps the first time). Someone
    else's answers 'not found', as if it did not exist."""
    row = session.get(NotificationRow, notification_id)
    if row is None or row.user_id != who.user_id:
        raise NotFound("notification", notification_id)
    if row.read_at is None:
        row.read_at = now
        session.commit()
    return Notification.model_validate(row)


def mark_all_read(session: Session, who: Principal, now: datetime) -> int:
    """Mark every unread notification of the caller read; how many."""
    result = session.execute(
        update(NotificationRow)
        .where(NotificationRow.user_id == who.user_id, NotificationRow.read_at.is_(None))
        .values(read_at=now)
    )
    session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


# --- e-mail preferences --------------------------------------------------------------------


def _settings_out(session: Session, user_id: int) -> NotificationSettings:
    row = session.get(NotificationSettingsRow, user_id)
    user = session.get(UserRow, user_id)
    return NotificationSettings(
        delivery=Delivery(row.delivery) if row else Delivery.DIGEST,
        muted=sorted(row.muted) if row else [],
        kinds=list(KINDS),
        email=user.email if user else "",
        last_digest_at=row.last_digest_at if row else None,
    )


def get_settings(session: Session, who: Principal) -> NotificationSettings:
    """The caller's e-mail preferences (a daily digest of everything, until changed)."""
    return _settings_out(session, who.user_id)


def update_settings(
    session: Session, who: Principal, change: NotificationSettingsUpdate
) -> NotificationSettings:
    """Change the caller's delivery and/or muted kinds; a wrong value is refused with the
    allowed ones, and nothing changes."""
    problems = []
    if change.delivery is not None and change.delivery not in DELIVERIES:
        problems.append(
            InvalidInput.on(
                "delivery", f"{change.delivery!r} is not one of: {', '.join(DELIVERIES)}"
            )
        )
    unknown = sorted(set(change.muted or []) - set(KINDS))
    if unknown:
        problems.append(
            InvalidInput.on(
                "muted", f"no kind {', '.join(map(repr, unknown))}; kinds: {', '.join(KINDS)}"
            )
        )
    if problems:
        raise InvalidInput(
            "; ".join(p.detail for p in problems), [f for p in problems for f in p.problems]
        )
    row = session.get(NotificationSettingsRow, who.user_id)
    if row is None:
        row = NotificationSettingsRow(user_id=who.user_id, delivery=Delivery.DIGEST.value, muted=[])
        session.add(row)
    if change.delivery is not None:
        row.delivery = change.delivery
    if change.muted is not None:
        # A fresh list, so the JSON column sees the change.
        row.muted = sorted(set(change.muted))
    session.commit()
    return _settings_out(session, who.user_id)


# --- budget notices ------------------------------------------------------------------------


def _budget_key(allocation_id: int, notice: Notice) -> str:
    return f"budget:{allocation_id}:{notice.value}"


def _budget_message(
    project: str, allocation: AllocationRow, budget: Budget, notice: Notice, now: datetime
) -> tuple[str, str]:
    used = f"{budget.consumed.value:,.1f} of {budget.awarded.value:,.1f} GPU-h"
    ends = f"{allocation.ends_at:%Y-%m-%d %H:%M} UTC"
    if notice in _USED_NOTICES:
        percent = notice.value.removeprefix("used-")
        subject = f"{project}: {percent} % of the GPU-hour budget used ({used})"
    else:
        days = max(1, math.ceil((allocation.ends_at - now).total_seconds() / 86400))
        within = "1 day" if days == 1 else f"{days} days"
        subject = f"{project}: the allocation ends in {within}, on {allocation.ends_at:%Y-%m-%d}"
    body = (
        f"Project {project}, allocation {allocation.id} ({allocation.track} track):\n"
        f"  used      {used} (normalised; {budget.used_fraction:.0%})\n"
        f"  committed {budget.committed.value:,.1f} GPU-h by running jobs\n"
        f"  remaining {budget.remaining.value:,.1f} GPU-h\n"
        f"  ends      {ends}\n"
        "A job whose time limit does not fit in what remains is not started."
    )
    return subject, body


def give_budget_notices(session: Session, now: datetime, access: AccessConfig) -> int:
    """Tell each active allocation's project members when 50, 80 or 100 % of the budget is
    used and when 30, 14 or 7 days are left; how many notices were given (each notice goes
    to every member). Each notice is given once per allocation, ever, even with several
    processes at it: its key (`budget:<allocation>:<notice>`) is claimed in the store, and
    the milder ones it supersedes are claimed with it so they never arrive late. Commits
    per allocation, so the claim and the notifications land together."""
    # Imported here so that allocations may notify through this module without a cycle.
    from fabriek.services.access.allocations import budgets

    active = list(
        session.scalars(
            select(AllocationRow)
            .where(AllocationRow.starts_at <= now, AllocationRow.ends_at > now)
            .order_by(AllocationRow.id)
        )
    )
    if not active:
        return 0
    found = budgets(session, now, access, [a.id for a in active])
    given = 0
    for allocation in active:
        budget = found.get(allocation.id)
        if budget is None:
            continue
        prefix = f"budget:{allocation.id}:"
        sent_keys = session.scalars(
            select(NoticeSentRow.key).where(NoticeSentRow.key.startswith(prefix))
        )
        sent = [
            Notice(k.removeprefix(prefix)) for k in sent_keys if k.removeprefix(prefix) in _NOTICES
        ]
        days_left = (allocation.ends_at - now).total_seconds() / 86400
        due = due_notices(budget.used_fraction, days_left, sent)
        if not due:
            continue
        project = session.get(ProjectRow, allocation.project_id)
        members = session.scalars(
            select(MembershipRow.user_id).where(MembershipRow.project_id == allocation.project_id)
        ).all()
        for notice in due:
            if not notify_once(session, _budget_key(allocation.id, notice), now):
                continue  # another process gave it a moment ago
            for milder in superseded(notice):
                notify_once(session, _budget_key(allocation.id, milder), now)
            name = project.name if project else str(allocation.project_id)
            subject, body = _budget_message(name, allocation, budget, notice, now)
            kind = (
                NotificationKind.BUDGET_USED
                if notice in _USED_NOTICES
                else NotificationKind.ALLOCATION_ENDING
            )
            notify(session, members, kind, subject, body, now, link=f"/projects/{name}")
            given += 1
        session.commit()
    return given
