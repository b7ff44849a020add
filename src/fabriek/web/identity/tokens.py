"""Portal pages for signing in with an API token and out, and the page where a person makes
API tokens for the CLI. Sign-in through an institution is in `web/identity/oidc.py`; the
foundation every page shares is in `web/layout.py`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fabriek.api.context import Ctx, Db
from fabriek.domain.errors import NotFound, Unauthenticated
from fabriek.domain.identity.people import TokenDraft
from fabriek.domain.roles import Principal
from fabriek.services import audit
from fabriek.services.identity import oidc
from fabriek.services.identity import tokens as token_service
from fabriek.services.identity.tokens import authenticate
from fabriek.web.forms import Form
from fabriek.web.layout import TOKEN_COOKIE, page, safe_next
from fabriek.web.session import SignedIn

# Where a sign-in goes when it was not sent from a page.
AFTER_SIGNIN = "/home"

router = APIRouter(include_in_schema=False)


def oidc_offered(ctx: Ctx) -> bool:
    """Whether the portal offers sign-in through an OpenID Connect provider."""
    return ctx.settings.oidc_issuer is not None


@router.get("/signin", response_class=HTMLResponse)
def signin_form(request: Request, ctx: Ctx, next: str = AFTER_SIGNIN) -> HTMLResponse:
    return page(request, "signin.html", "signin.title", None,
                {"next": safe_next(next), "oidc": oidc_offered(ctx)})  # fmt: skip


@router.post("/signin", response_model=None)
def signin(request: Request, db: Db, ctx: Ctx, form: Form) -> HTMLResponse | RedirectResponse:
    token, next = form.get("token", ""), form.get("next", AFTER_SIGNIN)
    try:
        who = authenticate(db, token.strip(), ctx.clock(), ctx.assurance)
    except Unauthenticated as bad:
        return page(request, "signin.html", "signin.title", None,
                    {"next": safe_next(next), "error": bad.detail, "oidc": oidc_offered(ctx)},
                    status_code=401)  # fmt: skip
    audit.record_sign_in(db, who, ctx.clock(), "token")
    done = RedirectResponse(safe_next(next), status_code=303)
    done.set_cookie(
        TOKEN_COOKIE, token.strip(), httponly=True, samesite="strict",
        secure=request.url.scheme == "https", max_age=12 * 3600,
    )  # fmt: skip
    return done


@router.post("/signout")
def signout() -> RedirectResponse:
    done = RedirectResponse("/", status_code=303)
    done.delete_cookie(TOKEN_COOKIE)
    return done


# -- API tokens ----------------------------------------------------------------------------------

OnTokens = Annotated[Principal, Depends(SignedIn("/tokens"))]


def tokens_page(
    request: Request,
    db: Db,
    ctx: Ctx,
    who: Principal,
    extra: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    found = token_service.list_tokens(db, who)
    context = {
        "tokens": [t for t in found if t.name != oidc.SESSION_TOKEN_NAME],
        "default_days": ctx.settings.token_days,
        **(extra or {}),
    }
    return page(request, "tokens.html", "tokens.title", who, context, status_code)


@router.get("/tokens", response_model=None)
def tokens(request: Request, db: Db, ctx: Ctx, who: OnTokens) -> Response:
    """The signed-in person's API tokens (for the CLI and scripts)."""
    return tokens_page(request, db, ctx, who)


@router.post("/tokens", response_model=None)
def make_token(request: Request, db: Db, ctx: Ctx, who: OnTokens, form: Form) -> Response:
    """A new API token; its secret is on this page only."""
    name, days = form.get("name", "").strip(), form.get("days", "").strip()
    if not name or len(name) > 100 or name == oidc.SESSION_TOKEN_NAME:
        return tokens_page(request, db, ctx, who, {"error": "tokens.bad_name"}, 422)
    if days and not (days.isdigit() and 1 <= int(days) <= 3650):
        return tokens_page(request, db, ctx, who, {"error": "tokens.bad_days"}, 422)
    draft = TokenDraft(name=name, expires_in_days=int(days) if days else None)
    new = token_service.issue_token(db, who.user_id, draft, ctx.clock(), ctx.settings.token_days,
                                    lineage=token_service.TokenLineage.of(who))  # fmt: skip
    db.commit()
    return tokens_page(request, db, ctx, who, {"new": new}, 201)


@router.post("/tokens/{key}/revoke", response_model=None)
def revoke_token(key: str, request: Request, db: Db, ctx: Ctx, who: OnTokens) -> Response:
    try:
        token_service.revoke_token(db, who, key, ctx.clock())
    except NotFound:
        return tokens_page(request, db, ctx, who, {"error": "tokens.not_found"}, 404)
    return RedirectResponse("/tokens", status_code=303)
