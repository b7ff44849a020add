"""Projects and their members. Projects the caller cannot see answer 404."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from fabriek.api.context import Caller, Ctx, Db
from fabriek.api.routers import API_PREFIX
from fabriek.api.schemas import PageOut, paging
from fabriek.domain.identity.people import Membership, MembershipDraft, Project, ProjectDraft
from fabriek.services.identity import projects
from fabriek.services.paging import PageRequest

router = APIRouter(prefix=f"{API_PREFIX}/projects", tags=["projects"])


@router.get("", response_model=PageOut[Project])
def list_projects(
    db: Db,
    who: Caller,
    page: Annotated[PageRequest, Depends(paging)],
    organisation_id: int | None = None,
    name: Annotated[str | None, Query(max_length=63, description="part of the name")] = None,
) -> PageOut[Project]:
    """The projects the caller may see."""
    return PageOut.of(projects.list_projects(db, who, page, organisation_id, name))


@router.post("", response_model=Project, status_code=status.HTTP_201_CREATED)
def create_project(body: ProjectDraft, db: Db, who: Caller, ctx: Ctx) -> Project:
    return projects.create_project(db, who, body, ctx.clock())


@router.get("/{ref}", response_model=Project)
def get_project(ref: str, db: Db, who: Caller) -> Project:
    return projects.get_project(db, who, ref)


@router.get("/{ref}/members", response_model=list[Membership])
def list_members(ref: str, db: Db, who: Caller) -> list[Membership]:
    return projects.list_members(db, who, ref)


@router.post("/{ref}/members", response_model=Membership, status_code=status.HTTP_201_CREATED)
def add_member(ref: str, body: MembershipDraft, db: Db, who: Caller, ctx: Ctx) -> Membership:
    """Add a member (the project's PI, its hub's staff, admins)."""
    return projects.add_member(db, who, ref, body, ctx.clock())


@router.delete("/{ref}/members/{username}", status_code=status.HTTP_204_NO_CONTENT)
def remove_member(ref: str, username: str, db: Db, who: Caller, ctx: Ctx) -> Response:
    projects.remove_member(db, who, ref, username, ctx.clock())
    return Response(status_code=status.HTTP_204_NO_CONTENT)
