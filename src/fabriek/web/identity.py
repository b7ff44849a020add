"""Portal pages for signing in and out, the language switch and notifications. The
foundation every page shares is in `web/layout.py`; the dashboard, home and operator pages
have modules of their own."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from fabriek.api.context import Ctx, Db
from fabriek.domain.errors import InvalidInput, NotFound, Unauthenticated
from fabriek.services import audit, notifications
from fabriek.services.identity import authenticate
from fabriek.services.paging import PageRequest
from fabriek.web.i18n import LANGUAGE_COOKIE, LANGUAGES
from fabriek.web.layout import (
    HERE,
    TOKEN_COOKIE,
    page,
    safe_next,
    signed_in,
    to_signin,
)

# Where a sign-in goes when it was not sent from a page.
AFTER_SIGNIN = "/home"


async def form_fields(request: Request) -> dict[str, str]:
    """An HTML form's fields (application/x-www-form-urlencoded), read without another
    dependency. The portal's largest form has a few dozen fields; more is not a person at a
    form, and gets a 422 rather than costing the server."""
    body = (await request.body()).decode("utf-8", errors="replace")
    try:
        return {k: v[0] for k, v in parse_qs(body, max_num_fields=MAX_FORM_FIELDS).items()}
    except ValueError:
        raise InvalidInput(
            f"a form of more than {MAX_FORM_FIELDS} fields; send the page's own form"
        ) from None


MAX_FORM_FIELDS = 64


Form = Annotated[dict[str, str], Depends(form_fields)]


def portal_router() -> APIRouter:
    """Sign-in, sign-out, language and notification routes; static files are mounted by
    `static_files`."""
    router = APIRouter(include_in_schema=False)

    @router.get("/signin", response_class=HTMLResponse)
    def signin_form(request: Request, ctx: Ctx, next: str = AFTER_SIGNIN) -> HTMLResponse:
        return page(request, "signin.html", "signin.title", None,
                    {"next": safe_next(next), "oidc": _oidc_on(ctx)})  # fmt: skip

    @router.post("/signin", response_model=None)
    def signin(
        request: Request,
        db: Db,
        ctx: Ctx,
        form: Form,
    ) -> HTMLResponse | RedirectResponse:
        token, next = form.get("token", ""), form.get("next", AFTER_SIGNIN)
        try:
            who = authenticate(db, token.strip(), ctx.clock())
        except Unauthenticated as bad:
            return page(request, "signin.html", "signin.title", None,
                        {"next": safe_next(next), "error": bad.detail, "oidc": _oidc_on(ctx)},
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

    @router.post("/language")
    def choose_language(request: Request, form: Form) -> Response:
        """The language switch: remember the choice and go back to the page it was on."""
        lang = form.get("lang", "")
        back = RedirectResponse(safe_next(form.get("next", "/")), status_code=303)
        if lang in LANGUAGES:
            back.set_cookie(
                LANGUAGE_COOKIE, lang, max_age=365 * 24 * 3600, httponly=True,
                samesite="lax", secure=request.url.scheme == "https",
            )  # fmt: skip
        return back

    @router.get("/notifications", response_model=None)
    def notification_list(
        request: Request, db: Db, ctx: Ctx, unread: bool = False
    ) -> HTMLResponse | RedirectResponse:
        """The signed-in person's notifications, newest first."""
        who = signed_in(request, db, ctx)
        if who is None:
            return to_signin("/notifications")
        found = notifications.list_notifications(
            db, who, PageRequest(limit=200), True if unread else None
        )
        return page(request, "notifications.html", "notifications.title", who,
                    {"found": found, "unread": unread})  # fmt: skip

    @router.post("/notifications/{notification_id}/read", response_model=None)
    def notification_read(
        notification_id: int, request: Request, db: Db, ctx: Ctx
    ) -> RedirectResponse | HTMLResponse:
        who = signed_in(request, db, ctx)
        if who is None:
            return to_signin("/notifications")
        try:
            notifications.mark_read(db, who, notification_id, ctx.clock())
        except NotFound:
            return page(request, "problem.html", "problem.not_found_title", who,
                        {"reason": "notifications.not_found"}, status_code=404)  # fmt: skip
        return RedirectResponse("/notifications", status_code=303)

    return router


def _oidc_on(ctx: Ctx) -> bool:
    """Whether the portal offers sign-in through an OpenID Connect provider."""
    return ctx.settings.oidc_issuer is not None


def static_files() -> StaticFiles:
    return StaticFiles(directory=HERE / "static")
