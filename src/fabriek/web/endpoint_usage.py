"""The portal's endpoint usage: requests and tokens per day, endpoint and caller, and each
endpoint's energy and carbon per 1,000 tokens, for one of the person's projects."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from fabriek.api.context import Db
from fabriek.domain.errors import FabriekError
from fabriek.domain.roles import Principal
from fabriek.services.endpoints import energy, keys
from fabriek.web.forms import problem_page
from fabriek.web.layout import page
from fabriek.web.session import SignedIn

router = APIRouter(include_in_schema=False)

OnPage = Annotated[Principal, Depends(SignedIn("/endpoint-usage"))]


@router.get("/endpoint-usage", response_model=None)
def endpoint_usage_page(
    request: Request, db: Db, who: OnPage, project: str | None = None
) -> Response:
    """Usage of a project's endpoints (the first of the person's projects by default)."""
    names = keys.member_projects(db, who)
    chosen = project or (names[0] if names else None)
    rows, power = [], []
    if chosen is not None:
        try:
            rows = keys.usage(db, who, chosen)
            power = energy.endpoint_energy(db, who, chosen)
        except FabriekError as refused:
            return problem_page(request, who, refused)
    return page(request, "endpoint_usage.html", "endpoint_usage.title", who,
                {"projects": names, "project": chosen, "rows": rows, "energy": power})  # fmt: skip
