"""People: admins and hub staff add and find them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from fabriek.api.context import Caller, Ctx, Db
from fabriek.api.routers import API_PREFIX
from fabriek.api.schemas import PageOut, paging
from fabriek.domain.identity.people import User, UserDraft
from fabriek.services.identity import users
from fabriek.services.paging import PageRequest

router = APIRouter(prefix=f"{API_PREFIX}/users", tags=["users"])


@router.get("", response_model=PageOut[User])
def list_users(
    db: Db,
    who: Caller,
    page: Annotated[PageRequest, Depends(paging)],
    q: Annotated[str | None, Query(max_length=100, description="part of username or name")] = None,
) -> PageOut[User]:
    return PageOut.of(users.list_users(db, who, page, q))


@router.post("", response_model=User, status_code=status.HTTP_201_CREATED)
def add_user(body: UserDraft, db: Db, who: Caller, ctx: Ctx) -> User:
    return users.add_user(db, who, body, ctx.clock())


@router.get("/{ref}", response_model=User)
def get_user(ref: str, db: Db, who: Caller) -> User:
    """A user by id or username: yourself, or anyone for admins and hub staff."""
    return users.get_user(db, who, ref)
