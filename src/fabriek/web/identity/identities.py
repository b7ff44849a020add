"""The page of a person's federated identities: which they have, linking another (started
in `web/identity/oidc.py`, confirmed here) and unlinking one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fabriek.api.context import Ctx, Db
from fabriek.api.problems import STATUS
from fabriek.domain.errors import FabriekError
from fabriek.domain.identity import tokens as token_format
from fabriek.domain.roles import Principal
from fabriek.services.identity import identities
from fabriek.web.forms import Form
from fabriek.web.layout import TOKEN_COOKIE, page
from fabriek.web.session import SignedIn

PAGE = "/account/identities"
router = APIRouter(include_in_schema=False)
OnIdentities = Annotated[Principal, Depends(SignedIn(PAGE))]


def _page(
    request: Request, db: Db, ctx: Ctx, who: Principal, extra: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:  # fmt: skip
    context = {"identities": identities.list_identities(db, who),
               "oidc": ctx.settings.oidc_issuer is not None, **(extra or {})}  # fmt: skip
    return page(request, "identities.html", "identities.title", who, context, status_code)


@router.get(PAGE, response_model=None)
def identities_page(request: Request, db: Db, ctx: Ctx, who: OnIdentities) -> Response:
    """The signed-in person's identities."""
    return _page(request, db, ctx, who)


@router.post(PAGE + "/confirm", response_model=None)
def confirm(request: Request, db: Db, ctx: Ctx, who: OnIdentities, form: Form) -> Response:
    """The person says the identity they came back with is theirs (or not: cancel)."""
    session_key = token_format.token_key(request.cookies.get(TOKEN_COOKIE, "")) or ""
    key = form.get("key", "")
    try:
        if form.get("answer") == "confirm":
            linked = identities.confirm_link(db, who, session_key, key, ctx.clock())
            return _page(request, db, ctx, who, {"linked": linked})
        identities.cancel_link(db, who, session_key, key)
    except FabriekError as bad:
        return _page(request, db, ctx, who, {"error": bad.detail}, _status(bad))
    return RedirectResponse(PAGE, status_code=303)


@router.post(PAGE + "/{identity_id}/unlink", response_model=None)
def unlink(identity_id: int, request: Request, db: Db, ctx: Ctx, who: OnIdentities) -> Response:
    try:
        revoked = identities.unlink(db, who, identity_id, ctx.clock())
    except FabriekError as bad:
        return _page(request, db, ctx, who, {"error": bad.detail}, _status(bad))
    return _page(request, db, ctx, who, {"unlinked": revoked})


def _status(bad: FabriekError) -> int:
    return next((s for t, s in STATUS.items() if isinstance(bad, t)), 400)
