"""Suspensions: an admin suspends a person, a project or an allocation, and lifts it."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from fabriek.api.context import Caller, Ctx, Db
from fabriek.api.routers import API_PREFIX
from fabriek.services.identity.suspensions import Suspendable, set_suspension

router = APIRouter(prefix=API_PREFIX, tags=["suspensions"])


class SuspensionIn(BaseModel):
    """Why: shown to the people the suspension stops, and kept on the audit trail."""

    reason: str = Field(min_length=1, max_length=500)


class SuspensionOut(BaseModel):
    suspended: bool
    suspended_at: datetime | None
    reason: str | None


def _routes(kind: Suspendable, collection: str) -> None:
    path = f"/{collection}/{{ref}}/suspension"

    def suspend(ref: str, body: SuspensionIn, db: Db, who: Caller, ctx: Ctx) -> SuspensionOut:
        since = set_suspension(db, who, kind, ref, body.reason, ctx.clock())
        return SuspensionOut(suspended=True, suspended_at=since, reason=body.reason.strip())

    def resume(ref: str, db: Db, who: Caller, ctx: Ctx) -> SuspensionOut:
        set_suspension(db, who, kind, ref, None, ctx.clock())
        return SuspensionOut(suspended=False, suspended_at=None, reason=None)

    router.put(path, response_model=SuspensionOut, summary=f"Suspend a {kind} (admins)")(suspend)
    router.delete(path, response_model=SuspensionOut, summary=f"Lift a {kind}'s suspension")(resume)


for _kind, _collection in (
    ("user", "users"),
    ("project", "projects"),
    ("allocation", "allocations"),
):
    _routes(_kind, _collection)  # type: ignore[arg-type]
