"""A person's own POSIX identity: the username, UID and groups they have on every site."""

from __future__ import annotations

from fastapi import APIRouter

from fabriek.api.context import Caller, Ctx, Db
from fabriek.api.routers import API_PREFIX
from fabriek.domain.site_agent_status import PosixAccountOut
from fabriek.services.accounts.posix import my_account

router = APIRouter(prefix=f"{API_PREFIX}/users/me", tags=["accounts"])


@router.get("/account", response_model=PosixAccountOut)
def get_my_account(db: Db, who: Caller, ctx: Ctx) -> PosixAccountOut:
    """Your POSIX identity at the sites: username, UID, and your projects' groups."""
    return my_account(db, who.user_id, ctx.settings.local_id_base)
