"""The expertise network: the directory of experts, requests for expertise, their matches
(explained), assignments within availability, and consultation hours."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from fabriek.api.context import Caller, Ctx, Db
from fabriek.api.routers import API_PREFIX
from fabriek.api.schemas import PageOut, paging
from fabriek.domain.support.expertise import (
    AssignmentDraft,
    ConsultationDraft,
    Expert,
    ExpertDraft,
    ExpertiseRequest,
    ExpertiseRequestDraft,
    ExpertPatch,
    Skill,
)
from fabriek.domain.support.matching import RequestMatches
from fabriek.services.paging import PageRequest
from fabriek.services.support import expertise, expertise_requests

router = APIRouter(prefix=API_PREFIX, tags=["expertise"])

Month = Annotated[
    str | None, Query(description="YYYY-MM: the month availability is counted in; default now")
]


@router.get("/skills", response_model=list[Skill])
def list_skills(who: Caller) -> list[Skill]:
    """The controlled vocabulary of skills, with English and Dutch labels."""
    return list(expertise.vocabulary().skills.values())


@router.get("/experts", response_model=PageOut[Expert])
def list_experts(
    db: Db,
    who: Caller,
    ctx: Ctx,
    page: Annotated[PageRequest, Depends(paging)],
    skill: Annotated[str | None, Query(description="a skill code, e.g. mlops")] = None,
    hub: Annotated[str | None, Query(description="a hub code, e.g. brightlands")] = None,
    language: Annotated[str | None, Query(description="a language spoken, e.g. nl")] = None,
    month: Month = None,
    include_inactive: bool = False,
) -> PageOut[Expert]:
    """The directory of experts by name, with the hours each has left in the month."""
    active = None if include_inactive else True
    return PageOut.of(
        expertise.list_experts(db, who, ctx.clock(), page, skill, hub, language, month, active)
    )


@router.post("/experts", response_model=Expert, status_code=status.HTTP_201_CREATED)
def create_expert(body: ExpertDraft, db: Db, who: Caller, ctx: Ctx) -> Expert:
    """Add an expert to a hub's network (that hub's staff, admins)."""
    return expertise.create_expert(db, who, body, ctx.clock())


@router.get("/experts/{expert_id}", response_model=Expert)
def get_expert(expert_id: int, db: Db, who: Caller, ctx: Ctx, month: Month = None) -> Expert:
    return expertise.get_expert(db, who, expert_id, ctx.clock(), month)


@router.patch("/experts/{expert_id}", response_model=Expert)
def update_expert(expert_id: int, body: ExpertPatch, db: Db, who: Caller, ctx: Ctx) -> Expert:
    """Change an expert's skills, hours, hub or details (staff of their hub, admins)."""
    return expertise.update_expert(db, who, expert_id, body, ctx.clock())


@router.get("/expertise-requests", response_model=PageOut[ExpertiseRequest])
def list_requests(
    db: Db,
    who: Caller,
    page: Annotated[PageRequest, Depends(paging)],
    hub: Annotated[str | None, Query(description="the requester's hub")] = None,
    ticket_id: int | None = None,
    proposal_id: int | None = None,
) -> PageOut[ExpertiseRequest]:
    """The requests for expertise the caller may see, newest first."""
    return PageOut.of(expertise_requests.list_requests(db, who, page, hub, ticket_id, proposal_id))


@router.post(
    "/expertise-requests", response_model=ExpertiseRequest, status_code=status.HTTP_201_CREATED
)
def create_request(body: ExpertiseRequestDraft, db: Db, who: Caller, ctx: Ctx) -> ExpertiseRequest:
    """Ask for expertise: about a ticket (hub staff), a proposal, or for one's own
    organisation."""
    return expertise_requests.create_request(db, who, body, ctx.clock())


@router.get("/expertise-requests/{request_id}", response_model=ExpertiseRequest)
def get_request(request_id: int, db: Db, who: Caller) -> ExpertiseRequest:
    return expertise_requests.get_request(db, who, request_id)


@router.get("/expertise-requests/{request_id}/matches", response_model=RequestMatches)
def match_request(
    request_id: int, db: Db, who: Caller, ctx: Ctx, month: Month = None
) -> RequestMatches:
    """The experts to propose, best first, each with the match explained (skills, region,
    language, hours left); and those passed over, with why."""
    when, found = expertise_requests.match_request(db, who, request_id, ctx.clock(), month)
    return RequestMatches(
        request_id=request_id,
        month=when,
        candidates=found.candidates,
        passed_over=found.passed_over,
    )


@router.post(
    "/expertise-requests/{request_id}/assignments",
    response_model=ExpertiseRequest,
    status_code=status.HTTP_201_CREATED,
)
def assign_expert(
    request_id: int, body: AssignmentDraft, db: Db, who: Caller, ctx: Ctx
) -> ExpertiseRequest:
    """Assign an expert, reserving hours of a month; refused (409) beyond what they have
    left."""
    return expertise_requests.assign_expert(db, who, request_id, body, ctx.clock())


@router.post(
    "/expertise-requests/{request_id}/consultations",
    response_model=ExpertiseRequest,
    status_code=status.HTTP_201_CREATED,
)
def log_consultation(
    request_id: int, body: ConsultationDraft, db: Db, who: Caller, ctx: Ctx
) -> ExpertiseRequest:
    """Log hours an assigned expert delivered."""
    return expertise_requests.log_consultation(db, who, request_id, body, ctx.clock())
