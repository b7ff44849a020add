"""Building the application: `create_app(settings)` and nothing at import time."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from fabriek import __version__
from fabriek.api import problems
from fabriek.api.context import AppContext
from fabriek.api.metrics import MetricsMiddleware, RequestMetrics
from fabriek.api.routers import (
    health,
    identity,
    organisations,
    projects,
    reference,
    sites,
    users,
)
from fabriek.settings import Settings
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.migrate import require_current

VERSIONED = (identity, reference, sites, organisations, users, projects)


def create_app(settings: Settings, extra_routers: list[APIRouter] | None = None) -> FastAPI:
    """The API (and any extra routers, such as the portal's) on the configured database.

    Refuses to build on a database whose schema is not this code's (StoreError).
    """
    engine = make_engine(settings.database_url)
    require_current(engine)
    app = FastAPI(
        title="Fabriek",
        version=__version__,
        description="The control plane of a sovereign AI factory.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.context = AppContext(settings=settings, engine=engine, sessions=make_sessions(engine))
    app.state.metrics = RequestMetrics()
    problems.install(app)
    app.include_router(health.router)
    for module in VERSIONED:
        app.include_router(module.router)
    for r in extra_routers or []:
        app.include_router(r)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app
