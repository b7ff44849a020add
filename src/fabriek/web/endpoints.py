"""The portal's endpoints page: a project's model endpoints with their replicas and state,
for its members (managing them is the CLI's and the API's: `fabriek endpoint`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from fabriek.api.context import Db
from fabriek.domain.endpoints import Endpoint
from fabriek.domain.errors import FabriekError
from fabriek.domain.roles import Principal
from fabriek.services.endpoints import manage
from fabriek.web.forms import problem_page
from fabriek.web.layout import page
from fabriek.web.session import SignedIn

router = APIRouter(include_in_schema=False)

OnPage = Annotated[Principal, Depends(SignedIn("/endpoints"))]


@router.get("/endpoints", response_model=None)
def endpoints_page(request: Request, db: Db, who: OnPage, project: str | None = None) -> Response:
    """A project's endpoints (the first of the person's projects by default)."""
    names = manage.member_projects(db, who)
    chosen = project or (names[0] if names else None)
    found: list[Endpoint] = []
    if chosen is not None:
        try:
            found = manage.list_endpoints(db, who, chosen)
        except FabriekError as refused:
            return problem_page(request, who, refused)
    return page(request, "endpoints.html", "endpoints.title", who,
                {"projects": names, "project": chosen, "endpoints": found})  # fmt: skip
