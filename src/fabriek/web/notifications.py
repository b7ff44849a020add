"""The signed-in person's notifications, and marking one read."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from fabriek.api.context import Ctx, Db
from fabriek.domain.errors import NotFound
from fabriek.domain.roles import Principal
from fabriek.services.notifications import inbox
from fabriek.services.paging import PageRequest
from fabriek.web.layout import page
from fabriek.web.session import SignedIn

router = APIRouter(include_in_schema=False)

# Back to the list (not its filter) after sign-in.
OnNotifications = Annotated[Principal, Depends(SignedIn("/notifications"))]


@router.get("/notifications", response_model=None)
def notification_list(
    request: Request, db: Db, who: OnNotifications, unread: bool = False
) -> Response:
    """The signed-in person's notifications, newest first."""
    found = inbox.list_notifications(db, who, PageRequest(limit=200), True if unread else None)
    return page(request, "notifications.html", "notifications.title", who,
                {"found": found, "unread": unread})  # fmt: skip


@router.post("/notifications/{notification_id}/read", response_model=None)
def notification_read(
    notification_id: int, request: Request, db: Db, ctx: Ctx, who: OnNotifications
) -> Response:
    try:
        inbox.mark_read(db, who, notification_id, ctx.clock())
    except NotFound:
        return page(request, "problem.html", "problem.not_found_title", who,
                    {"reason": "notifications.not_found"}, status_code=404)  # fmt: skip
    return RedirectResponse("/notifications", status_code=303)
