"""The portal's foundation: templates, the signed-in person, navigation by role, and how a
page is answered. Every portal module builds on this one.

Adding a page (a sketch; see `web/home.py` for a whole one):

    from fabriek.web.layout import forbidden, page
    from fabriek.web.session import Person

    router = APIRouter(include_in_schema=False)     # listed in `web/portal.py` ROUTERS

    @router.get("/things", response_class=HTMLResponse, response_model=None)
    def things(request: Request, db: Db, who: Person) -> Response:
        # `Person`: anonymous requests go to the sign-in page and back, never get here.
        if not may_see_things(who):
            return forbidden(request, who, "things.forbidden")   # 403, said in words
        return page(request, "things.html", "things.title", who, {"rows": ...})

- A form's target comes back to the page the form was on after sign-in:
  `who: Annotated[Principal, Depends(SignedIn("/things/{thing_id}"))]`.
- The template extends `base.html` and fills `{% block content %}`; `base.html` draws the
  header (sign-in state, navigation, language switch), the `<h1>` from the title key, and
  the footer. Every text goes through `t("key")` (see `web/i18n`).
- A chart: build a `web.charts.Chart` in the route, and in the template
  `{% from "_chart.html" import chart with context %}{{ chart(c) }}`: a canvas drawn by
  the vendored Chart.js and the same numbers in a table.
- Live parts: htmx is loaded on every page (`hx-get`, `hx-trigger="every 15s"`); a part's
  route answers a fragment template (`page(..., fragment=True)` renders without the layout).
  The page must be complete without JavaScript.
- Navigation: add an entry to `NAV` (a translation key, a path, and who sees it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from jinja2.runtime import Context

from fabriek import __version__
from fabriek.api.context import AppContext
from fabriek.domain.errors import Unauthenticated
from fabriek.domain.gpus import GPU_TYPES
from fabriek.domain.identity import tokens as token_format
from fabriek.domain.roles import Principal, Role
from fabriek.services.identity.tokens import authenticate
from fabriek.web.charts import chart_data
from fabriek.web.i18n import LANGUAGES, format_day, format_number, language_of, translate

HERE = Path(__file__).parent

# The portal signs in with the same personal API token as the CLI, kept in a cookie that
# scripts cannot read and other sites cannot send (SameSite=Strict: no cross-site forms).
TOKEN_COOKIE = token_format.COOKIE


@dataclass(frozen=True)
class NavItem:
    """One link of the header's navigation, shown to those `shown_to` lets in."""

    key: str
    href: str
    shown_to: Callable[[Principal | None], bool]


def everyone(who: Principal | None) -> bool:
    return True


def signed_in_people(who: Principal | None) -> bool:
    return who is not None


def operators(who: Principal | None) -> bool:
    return who is not None and (who.is_admin or who.has_role(Role.SITE_OPERATOR))


def reviewers(who: Principal | None) -> bool:
    """Those who may be asked for reviews: reviewers (scientific), site staff (technical)."""
    return who is not None and (who.has_role(Role.REVIEWER) or who.has_role(Role.SITE_OPERATOR))


def call_runners(who: Principal | None) -> bool:
    """Those who decide proposals: the access team, admins, hub staff (regional track)."""
    return who is not None and (
        who.is_admin or who.has_role(Role.ACCESS_TEAM) or who.has_role(Role.HUB_STAFF)
    )


def hub_staff(who: Principal | None) -> bool:
    return who is not None and (who.is_admin or who.has_role(Role.HUB_STAFF))


NAV: list[NavItem] = [
    NavItem("nav.dashboard", "/", everyone),
    NavItem("nav.home", "/home", signed_in_people),
    NavItem("nav.jobs", "/jobs", signed_in_people),
    NavItem("nav.endpoints", "/endpoints", signed_in_people),
    NavItem("nav.calls", "/calls", signed_in_people),
    NavItem("nav.reviews", "/reviews", reviewers),
    NavItem("nav.decisions", "/decisions", call_runners),
    NavItem("nav.hub", "/hub", hub_staff),
    NavItem("nav_ai.ai_systems", "/ai-systems", signed_in_people),
    NavItem("nav_ai.support", "/support", signed_in_people),
    NavItem("nav.operator", "/operator", operators),
    NavItem("nav.notifications", "/notifications", signed_in_people),
    NavItem("terms.nav", "/terms", signed_in_people),
    NavItem("nav.tokens", "/tokens", signed_in_people),
    NavItem("ssh.nav", "/ssh-keys", signed_in_people),
    NavItem("nav.api", "/docs", everyone),
]


def _request_context(request: Request) -> dict[str, Any]:
    """What every template knows of the request: its language and path."""
    return {"lang": language_of(request), "path": request.url.path, "languages": LANGUAGES}


@pass_context
def _t(context: Context, key: str, **params: Any) -> str:
    return translate(context["lang"], key, **params)


@pass_context
def _num(context: Context, value: float | int | None, digits: int = 0) -> str:
    return format_number(value, context["lang"], digits)


@pass_context
def _day(context: Context, value: Any) -> str:
    return format_day(value, context["lang"])


@pass_context
def _chart_json(context: Context, chart: Any) -> dict[str, Any]:
    return chart_data(chart, context["lang"])


def _nav(who: Principal | None) -> list[NavItem]:
    return [item for item in NAV if item.shown_to(who)]


def _templates() -> Jinja2Templates:
    made = Jinja2Templates(directory=HERE / "templates", context_processors=[_request_context])
    made.env.globals.update(
        version=__version__, gpu_types=GPU_TYPES, t=_t, nav=_nav, chart_json=_chart_json
    )
    made.env.filters.update(num=_num, day=_day)
    return made


templates = _templates()


def page(
    request: Request,
    template: str,
    title: str,
    who: Principal | None,
    context: Mapping[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """A page: `template` with the title's translation key, the signed-in person (or None)
    and the page's own values."""
    values = {"title": title, "who": who, **(context or {})}
    return templates.TemplateResponse(request, template, values, status_code=status_code)


def signed_in(request: Request, db: Any, ctx: AppContext) -> Principal | None:
    """The person the session cookie signs in, or None."""
    token = request.cookies.get(TOKEN_COOKIE)
    if not token:
        return None
    try:
        return authenticate(db, token, ctx.clock(), ctx.assurance)
    except Unauthenticated:
        return None


def safe_next(target: str) -> str:
    """Only a path on this site: a sign-in link must not send anyone elsewhere."""
    # A browser reads '/\\host' as '//host', another site.
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) else "/"


def to_signin(target: Request | str) -> RedirectResponse:
    """To the sign-in page, and back to `target` (a path, or this request's) afterwards."""
    if isinstance(target, Request):
        target = target.url.path + (f"?{target.url.query}" if target.url.query else "")
    return RedirectResponse(f"/signin?next={quote(target, safe='/')}", status_code=303)


def forbidden(request: Request, who: Principal, reason: str) -> HTMLResponse:
    """403: signed in, but this page is not for them; `reason` is a translation key."""
    return page(request, "problem.html", "problem.forbidden_title", who,
                {"reason": reason}, status_code=403)  # fmt: skip
