"""Model endpoints of a project: create (its first replicas start), list, show with replicas
and the model version that answers, change (a new model version rolls out replica by
replica; replica bounds; idle time), delete (replicas drained)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from fabriek.api.context import Caller, Ctx, Db
from fabriek.api.routers import API_PREFIX
from fabriek.domain.endpoints import Endpoint, EndpointChange, EndpointDraft
from fabriek.services.endpoints import manage

router = APIRouter(prefix=f"{API_PREFIX}/projects/{{project}}/endpoints", tags=["endpoints"])

ProjectRef = Annotated[str, Path(description="the project, by name or id")]
Name = Annotated[str, Path(description="the endpoint's name in its project")]


@router.post("", response_model=Endpoint, status_code=status.HTTP_201_CREATED)
def create_endpoint(
    project: ProjectRef, body: EndpointDraft, db: Db, who: Caller, ctx: Ctx
) -> Endpoint:
    """Create an endpoint and start its first `min_replicas` replicas as jobs of the
    project (its principal investigator or an admin)."""
    return manage.create_endpoint(db, who, project, body, ctx.clock(), ctx.images)


@router.get("", response_model=list[Endpoint])
def list_endpoints(project: ProjectRef, db: Db, who: Caller) -> list[Endpoint]:
    """The project's endpoints with their replicas (its members, its hub, admins)."""
    return manage.list_endpoints(db, who, project)


@router.get("/{name}", response_model=Endpoint)
def get_endpoint(project: ProjectRef, name: Name, db: Db, who: Caller) -> Endpoint:
    """One endpoint, its replicas and the model version that answers."""
    return manage.get_endpoint(db, who, project, name)


@router.patch("/{name}", response_model=Endpoint)
def update_endpoint(
    project: ProjectRef, name: Name, body: EndpointChange, db: Db, who: Caller, ctx: Ctx
) -> Endpoint:
    """Change an endpoint: a new model version rolls out replica by replica without a
    moment with fewer healthy replicas; replica bounds and idle time apply at once."""
    return manage.update_endpoint(db, who, project, name, body, ctx.clock())


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_endpoint(project: ProjectRef, name: Name, db: Db, who: Caller, ctx: Ctx) -> Response:
    """Delete an endpoint: it is no longer routed to; its replicas drain and end."""
    manage.delete_endpoint(db, who, project, name, ctx.clock())
    return Response(status_code=status.HTTP_204_NO_CONTENT)
