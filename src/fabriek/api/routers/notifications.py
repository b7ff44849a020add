"""One's own notifications: the list (all, or unread), marking them read, and how they are
e-mailed. Everyone sees only their own; someone else's answers 404."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from fabriek.api.context import Caller, Ctx, Db
from fabriek.api.routers import API_PREFIX
from fabriek.api.schemas import PageOut, paging
from fabriek.domain.notifications import (
    MarkedRead,
    Notification,
    NotificationSettings,
    NotificationSettingsUpdate,
)
from fabriek.services.notifications import inbox
from fabriek.services.paging import PageRequest

router = APIRouter(prefix=f"{API_PREFIX}/notifications", tags=["notifications"])


@router.get("", response_model=PageOut[Notification])
def list_notifications(
    db: Db,
    who: Caller,
    page: Annotated[PageRequest, Depends(paging)],
    unread: Annotated[
        bool | None, Query(description="true: only unread; false: only read; absent: all")
    ] = None,
) -> PageOut[Notification]:
    """The caller's notifications, newest first."""
    return PageOut.of(inbox.list_notifications(db, who, page, unread))


@router.get("/settings", response_model=NotificationSettings)
def get_settings(db: Db, who: Caller) -> NotificationSettings:
    """How the caller's notifications are e-mailed, and the kinds there are to mute."""
    return inbox.get_settings(db, who)


@router.put("/settings", response_model=NotificationSettings)
def update_settings(body: NotificationSettingsUpdate, db: Db, who: Caller) -> NotificationSettings:
    """Change delivery (digest, immediate, none) and/or the muted kinds; fields left out
    stay as they are."""
    return inbox.update_settings(db, who, body)


@router.post("/read-all", response_model=MarkedRead)
def mark_all_read(db: Db, who: Caller, ctx: Ctx) -> MarkedRead:
    """Mark every unread notification of the caller read."""
    return MarkedRead(marked=inbox.mark_all_read(db, who, ctx.clock()))


@router.post("/{notification_id}/read", response_model=Notification)
def mark_read(notification_id: int, db: Db, who: Caller, ctx: Ctx) -> Notification:
    """Mark one of the caller's notifications read."""
    return inbox.mark_read(db, who, notification_id, ctx.clock())
