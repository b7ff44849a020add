"""The whole portal on an application: its routes, its static files, the state it keeps
between requests, and the answer to a page asked for without signing in (the sign-in page,
and back afterwards: `web/session.py`)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from fabriek.web import (
    ai_act,
    apps_proxy,
    endpoint_usage,
    endpoints,
    energy,
    home,
    jobs,
    language,
    notifications,
    public_dashboard,
    terms,
)
from fabriek.web.access import decisions, proposals
from fabriek.web.identity import identities, oidc, ssh_keys, tokens
from fabriek.web.layout import HERE
from fabriek.web.session import SignInNeeded, sign_in_first
from fabriek.web.state import PortalState
from fabriek.web.support import hub_desk, tickets

# In this order: a path that two routers could answer goes to the first.
ROUTERS: tuple[APIRouter, ...] = (
    public_dashboard.router, tokens.router, language.router, notifications.router,
    oidc.router, home.router, energy.router, jobs.router, proposals.router,
    decisions.router, hub_desk.router, ai_act.router, tickets.router, terms.router,
    ssh_keys.router, apps_proxy.router, endpoints.router, endpoint_usage.router,
    identities.router,
)  # fmt: skip


def install_portal(app: FastAPI) -> None:
    """Add the portal to `app` (the API's application)."""
    app.state.portal = PortalState()
    for router in ROUTERS:
        app.include_router(router)
    app.add_exception_handler(SignInNeeded, sign_in_first)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
