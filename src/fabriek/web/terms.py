"""Terms of use in the portal: where the signed-in person stands with each set of terms, the
text of those they must accept, and a button to accept them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from fabriek.api.context import Ctx, Db
from fabriek.domain.errors import FabriekError
from fabriek.domain.roles import Principal
from fabriek.services.accounts import terms_publishing
from fabriek.web.forms import problem_page
from fabriek.web.layout import page
from fabriek.web.session import SignedIn

router = APIRouter(include_in_schema=False)

OnTerms = Annotated[Principal, Depends(SignedIn("/terms"))]


@router.get("/terms", response_model=None)
def terms_page(request: Request, db: Db, who: OnTerms) -> Response:
    """Every set of terms with what the person accepted; those pending first, in full."""
    found = terms_publishing.status_of(db, who)
    pending = [
        (status, terms_publishing.get_terms(db, status.scope)) for status in found if status.pending
    ]
    settled = [status for status in found if not status.pending]
    return page(request, "terms.html", "terms.title", who,
                {"pending": pending, "settled": settled})  # fmt: skip


@router.post("/terms/{scope}/{version}/accept", response_model=None)
def terms_accept(
    scope: str, version: int, request: Request, db: Db, ctx: Ctx, who: OnTerms
) -> Response:
    """Accept one version of a scope's terms, then back to the terms page."""
    try:
        terms_publishing.accept(db, who, scope, version, ctx.clock())
    except FabriekError as refused:
        return problem_page(request, who, refused)
    return RedirectResponse("/terms", status_code=303)
