"""The served application: the API, the portal and its static files, from the settings.

`build_app` is also the factory uvicorn's worker processes call (`fabriek serve --workers`).
"""

from __future__ import annotations

from fastapi import FastAPI

from fabriek.api.app import create_app
from fabriek.settings import Settings
from fabriek.web.portal import install_portal


def build_app(settings: Settings | None = None) -> FastAPI:
    """The whole application; settings from the environment when not given."""
    app = create_app(settings or Settings())
    install_portal(app)
    return app
