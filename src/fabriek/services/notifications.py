"""Notifications: messages to people, kept in the store, listed in the portal and the API,
and e-mailed (see `fabriek.services.mail`) at once or in a daily digest."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fabriek.domain.roles import Role
from fabriek.store.tables import NoticeSentRow, NotificationRow, StaffRoleRow


def notify(
    session: Session,
    user_ids: Iterable[int],
    kind: str,
    subject: str,
    body: str,
    now: datetime,
    link: str | None = None,
) -> int:
    """Leave one notification of `kind` for each of `user_ids` (each person once); how many.
    Not committed: it lands with the change it tells about."""
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
