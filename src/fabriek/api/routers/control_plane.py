"""The control plane itself: which server holds the dispatcher's and the housekeeping's
roles (docs/operations.md, "Two control-plane servers")."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from fabriek.api.context import Caller, Db
from fabriek.api.routers import API_PREFIX
from fabriek.services.jobs.leadership import LeaseKeeper, who_leads

router = APIRouter(prefix=f"{API_PREFIX}/control-plane", tags=["control plane"])


class RoleLease(BaseModel):
    role: str = Field(description="dispatcher or housekeeping")
    holder: str = Field(description="the server holding it: host:process:random")
    epoch: int = Field(description="grows by one at every change of holder")
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime
    this_server: bool = Field(description="whether the server that answered holds it")
    acting: bool = Field(description="whether it acts as the role now (its lease is running)")


class ControlPlaneOut(BaseModel):
    server: str | None = Field(description="the server that answered, as a lease holder")
    roles: list[RoleLease]


@router.get("", response_model=ControlPlaneOut)
def control_plane(request: Request, db: Db, who: Caller) -> ControlPlaneOut:
    """Which server leads each role, in which epoch, until when (admins). Every server
    answers the API whether it leads or not."""
    keeper: LeaseKeeper | None = getattr(request.app.state, "leases", None)
    me = keeper.holder if keeper is not None else None
    now = datetime.now().astimezone()
    return ControlPlaneOut(
        server=me,
        roles=[
            RoleLease(
                role=lease.role, holder=lease.holder, epoch=lease.epoch,
                acquired_at=lease.acquired_at, renewed_at=lease.renewed_at,
                expires_at=lease.expires_at, this_server=lease.holder == me,
                acting=not lease.expired(now) and not lease.released,
            )
            for lease in who_leads(db, who)
        ],
    )  # fmt: skip
