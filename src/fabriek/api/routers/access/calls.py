"""Access tracks and calls for proposals: listed to every signed-in user, opened by the
access team."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from pydantic import BaseModel, Field

from fabriek.api.context import Caller, Ctx, Db
from fabriek.api.routers import API_PREFIX
from fabriek.api.schemas import PageOut, paging
from fabriek.domain.access.calls import Call, CallDraft
from fabriek.domain.access.tracks import Track
from fabriek.services.access import calls
from fabriek.services.paging import PageRequest

router = APIRouter(prefix=API_PREFIX)


class TrackOut(BaseModel):
    """One access track: who may apply, how much, how fast the decision, for how long."""

    code: str
    name: str
    description: str
    eligible_kinds: list[str]
    eu_establishment: bool
    min_gpu_hours: float = Field(description="normalised GPU-h")
    max_gpu_hours: float | None = Field(description="normalised GPU-h; none: no upper bound")
    decision_working_days: int
    clock_from_cutoff: bool = Field(description="the clock starts at the call's cut-off")
    peer_review: bool
    durations_months: list[int]
    preemptible: bool
    tier: int
    hub: str | None
    run_by_hub: bool
    source: str

    @classmethod
    def of(cls, t: Track) -> TrackOut:
        return cls(
            code=t.code,
            name=t.name,
            description=t.description,
            eligible_kinds=sorted(k.value for k in t.eligible_kinds),
            eu_establishment=t.eu_establishment,
            min_gpu_hours=t.min_gpu_hours.value,
            max_gpu_hours=t.max_gpu_hours.value if t.max_gpu_hours is not None else None,
            decision_working_days=t.decision_working_days,
            clock_from_cutoff=t.clock_from_cutoff,
            peer_review=t.peer_review,
            durations_months=list(t.durations_months),
            preemptible=t.preemptible,
            tier=t.tier,
            hub=t.hub.value if t.hub else None,
            run_by_hub=t.run_by_hub,
            source=t.source,
        )


class TracksOut(BaseModel):
    """The configured tracks and what one hour of each GPU type costs in normalised GPU-h."""

    version: str
    gpu_hour_factors: dict[str, float]
    tracks: list[TrackOut]


@router.get("/tracks", response_model=TracksOut, tags=["access"])
def list_tracks(ctx: Ctx, _who: Caller) -> TracksOut:
    """The access tracks this factory is configured with, and the GPU-hour factors."""
    return TracksOut(
        version=ctx.access.version,
        gpu_hour_factors=dict(ctx.access.gpu_hour_factors),
        tracks=[TrackOut.of(t) for t in ctx.access.tracks.values()],
    )


@router.get("/calls", response_model=PageOut[Call], tags=["access"])
def list_calls(
    db: Db,
    ctx: Ctx,
    _who: Caller,
    page: Annotated[PageRequest, Depends(paging)],
    track: Annotated[str | None, Query(max_length=40, description="a track's code")] = None,
    open_only: Annotated[bool, Query(alias="open", description="only calls open now")] = False,
) -> PageOut[Call]:
    """Calls for proposals, the latest opening first."""
    return PageOut.of(calls.list_calls(db, page, ctx.access, ctx.clock(), track, open_only))


@router.post("/calls", response_model=Call, status_code=status.HTTP_201_CREATED, tags=["access"])
def create_call(body: CallDraft, db: Db, ctx: Ctx, who: Caller) -> Call:
    """Open a call on a configured track (the access team, admins). A call without
    `closes_at` stays open; with one, proposals are taken until that cut-off."""
    return calls.create_call(db, who, body, ctx.access, ctx.clock())


@router.get("/calls/{ref}", response_model=Call, tags=["access"])
def get_call(ref: str, db: Db, ctx: Ctx, _who: Caller) -> Call:
    """One call, by id or code."""
    return calls.get_call(db, ref, ctx.access, ctx.clock())
