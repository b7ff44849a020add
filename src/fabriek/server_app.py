"""The served application: the API, the portal and its static files, from the settings.

`build_app` is also the factory uvicorn's worker processes call (`fabriek serve --workers`).
"""

from __future__ import annotations

from fastapi import FastAPI

from fabriek.api.app import create_app
from fabriek.settings import Settings
from fabriek.web.access import access_router
from fabriek.web.ai_act import ai_act_router
from fabriek.web.home import home_router
from fabriek.web.identity import portal_router, static_files
from fabriek.web.jobs import jobs_router
from fabriek.web.oidc import oidc_router
from fabriek.web.operator import operator_router
from fabriek.web.public_dashboard import dashboard_router
from fabriek.web.support.hub_desk import hub_router
from fabriek.web.support.tickets import support_router


def build_app(settings: Settings | None = None) -> FastAPI:
    """The whole application; settings from the environment when not given."""
    portal = [dashboard_router(), portal_router(), oidc_router(), home_router(), operator_router()]
    portal += [jobs_router(), access_router(), hub_router()]
    portal += [ai_act_router(), support_router()]
    app = create_app(settings or Settings(), extra_routers=portal)
    app.mount("/static", static_files(), name="static")
    return app
