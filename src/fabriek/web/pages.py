"""Portal pages. The public ones need no sign-in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from fabriek import __version__
from fabriek.api.context import Ctx, Db
from fabriek.domain.errors import NotFound, Unauthenticated
from fabriek.domain.gpus import GPU_TYPES
from fabriek.domain.roles import Principal
from fabriek.services import audit, notifications
from fabriek.services.identity import authenticate
from fabriek.services.overview import factory_overview
from fabriek.services.paging import PageRequest

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals.update(version=__version__, gpu_types=GPU_TYPES)

# The portal signs in with the same personal API token as the CLI, kept in a cookie that
# scripts cannot read and other sites cannot send (SameSite=Strict: no cross-site forms).
TOKEN_COOKIE = "fabriek_token"


async def form_fields(request: Request) -> dict[str, str]:
    """An HTML form's fields (application/x-www-form-urlencoded), read without another
    dependency: the portal's forms are a field or two."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(body, max_num_fields=20).items()}


Form = Annotated[dict[str, str], Depends(form_fields)]


def _signed_in(request: Request, db: Db, ctx: Ctx) -> Principal | None:
    token = request.cookies.get(TOKEN_COOKIE)
    if not token:
        return None
    try:
        return authenticate(db, token, ctx.clock())
    except Unauthenticated:
        return None


def _to_signin(target: str) -> RedirectResponse:
    return RedirectResponse(f"/signin?next={target}", status_code=303)


def portal_router() -> APIRouter:
    """The portal's routes; static files are mounted by `mount_static`."""
    router = APIRouter(include_in_schema=False)

    @router.get("/", response_class=HTMLResponse)
    def home(request: Request, db: Db) -> HTMLResponse:
        """The factory at a glance, for everyone."""
        overview = factory_overview(db)
        return templates.TemplateResponse(
            request, "index.html", {"overview": overview, "page_title": "The factory at a glance"}
        )

    @router.get("/signin", response_class=HTMLResponse)
    def signin_form(request: Request, ctx: Ctx, next: str = "/notifications") -> HTMLResponse:
        return templates.TemplateResponse(
            request, "signin.html",
            {"page_title": "Sign in", "next": _safe_next(next), "oidc": _oidc_on(ctx)},
        )  # fmt: skip

    @router.post("/signin", response_model=None)
    def signin(
        request: Request,
        db: Db,
        ctx: Ctx,
        form: Form,
    ) -> HTMLResponse | RedirectResponse:
        token, next = form.get("token", ""), form.get("next", "/notifications")
        try:
            who = authenticate(db, token.strip(), ctx.clock())
        except Unauthenticated as bad:
            page = templates.TemplateResponse(
                request, "signin.html",
                {"page_title": "Sign in", "next": _safe_next(next), "error": bad.detail,
                 "oidc": _oidc_on(ctx)},
                status_code=401,
            )  # fmt: skip
            return page
        audit.record_sign_in(db, who, ctx.clock(), "token")
        done = RedirectResponse(_safe_next(next), status_code=303)
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

    @router.get("/notifications", response_model=None)
    def notification_list(
        request: Request, db: Db, ctx: Ctx, unread: bool = False
    ) -> HTMLResponse | RedirectResponse:
        """The signed-in person's notifications, newest first."""
        who = _signed_in(request, db, ctx)
        if who is None:
            return _to_signin("/notifications")
        found = notifications.list_notifications(
            db, who, PageRequest(limit=200), True if unread else None
        )
        return templates.TemplateResponse(
            request, "notifications.html",
            {"page_title": "Notifications", "who": who, "found": found, "unread": unread},
        )  # fmt: skip

    @router.post("/notifications/{notification_id}/read", response_model=None)
    def notification_read(
        notification_id: int, request: Request, db: Db, ctx: Ctx
    ) -> RedirectResponse | HTMLResponse:
        who = _signed_in(request, db, ctx)
        if who is None:
            return _to_signin("/notifications")
        try:
            notifications.mark_read(db, who, notification_id, ctx.clock())
        except NotFound:
            return HTMLResponse("No such notification.", status_code=404)
        return RedirectResponse("/notifications", status_code=303)

    return router


def _oidc_on(ctx: Ctx) -> bool:
    """Whether the portal offers sign-in through an OpenID Connect provider."""
    return ctx.settings.oidc_issuer is not None


def _safe_next(target: str) -> str:
    """Only a path on this site: a sign-in link must not send anyone elsewhere."""
    # A browser reads '/\\host' as '//host', another site.
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) else "/"


def static_files() -> StaticFiles:
    return StaticFiles(directory=HERE / "static")
