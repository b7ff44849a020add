"""The language switch in every page's header (the catalogues are in `web/i18n`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from fabriek.web.forms import Form
from fabriek.web.i18n import LANGUAGE_COOKIE, LANGUAGES
from fabriek.web.layout import safe_next

router = APIRouter(include_in_schema=False)


@router.post("/language")
def choose_language(request: Request, form: Form) -> Response:
    """Remember the choice and go back to the page it was on."""
    lang = form.get("lang", "")
    back = RedirectResponse(safe_next(form.get("next", "/")), status_code=303)
    if lang in LANGUAGES:
        back.set_cookie(
            LANGUAGE_COOKIE, lang, max_age=365 * 24 * 3600, httponly=True,
            samesite="lax", secure=request.url.scheme == "https",
        )  # fmt: skip
    return back
