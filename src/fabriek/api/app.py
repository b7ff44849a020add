"""Building the application: `create_app(settings)` and nothing at import time."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from fabriek import __version__
from fabriek.api import problems
from fabriek.api.context import AppContext, new_submitters, utc_now
from fabriek.api.metrics import MetricsMiddleware, RequestMetrics
from fabriek.api.routers import (
    accounts,
    audit,
    datasets,
    health,
    jobs,
    notifications,
    reference,
    site_accounting,
    site_agent,
    site_agent_ssh,
    sites,
    ssh_access,
    support,
    terms,
    usage,
)
from fabriek.api.routers.access import allocations, calls, proposals
from fabriek.api.routers.ai_act import models, sandboxes
from fabriek.api.routers.ai_act import systems as ai_systems
from fabriek.api.routers.identity import organisations, projects, suspensions, tokens, users
from fabriek.services.control_plane import open_control_plane
from fabriek.services.datasets.vault import sweep_storage
from fabriek.services.identity.tokens import PrincipalCache
from fabriek.services.jobs import ProjectRefCache
from fabriek.services.jobs.leadership import claim_dispatch
from fabriek.services.jobs.submissions import SubmissionWriter
from fabriek.settings import Settings

VERSIONED = (
    tokens, reference, sites, organisations, users, projects, jobs, notifications,
    allocations, calls, proposals, usage, audit, datasets, ai_systems, models, sandboxes,
    support, site_agent, terms, ssh_access, site_agent_ssh, accounts,
    site_accounting, suspensions,
)  # fmt: skip


def create_app(
    settings: Settings,
    extra_routers: list[APIRouter] | None = None,
    run_dispatcher: bool = True,
) -> FastAPI:
    """The API (and any extra routers, such as the portal's) on the configured database,
    with the dispatcher running in a thread while the app serves.

    Refuses to build on a database whose schema is not this code's (StoreError).
    """
    plane = open_control_plane(settings, utc_now)
    sessions, vault, dispatcher = plane.sessions, plane.vault, plane.dispatcher

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        thread = threading.Thread(
            target=dispatcher.run,
            args=(stop, settings.dispatch_interval_s),
            name="dispatcher",
            daemon=True,
        )
        # With several API processes, the one that holds the lock dispatches; the others
        # serve requests, and their submissions are picked up at the next cycle.
        lock = claim_dispatch(settings.state_dir) if run_dispatcher else None
        # What a killed upload left behind is removed before anyone can count it.
        sweep_storage(sessions, vault)
        if lock is not None:
            thread.start()
        yield
        stop.set()
        dispatcher.wake.set()
        if lock is not None:
            thread.join(timeout=30)
            lock.close()
        dispatcher.close()
        # The submission threads end with the app; a restarted app gets new ones.
        ctx = app.state.context
        ctx.submitters.shutdown(wait=True)
        ctx.submitters = new_submitters()
        if ctx.writer is not None:
            ctx.writer.close()
            ctx.writer = SubmissionWriter(sessions)

    app = FastAPI(
        lifespan=lifespan,
        title="Fabriek",
        version=__version__,
        description="The control plane of a sovereign AI factory.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.context = AppContext(
        settings=settings,
        engine=plane.engine,
        sessions=sessions,
        dispatcher=dispatcher,
        site_shapes=plane.shapes,
        access=plane.access,
        principals=PrincipalCache(plane.watch),
        project_refs=ProjectRefCache(plane.watch),
        writer=SubmissionWriter(sessions),
    )
    app.state.metrics = RequestMetrics()
    app.state.vault = vault
    problems.install(app)
    app.include_router(health.router)
    for module in VERSIONED:
        app.include_router(module.router)
    app.include_router(datasets.keys_router)
    for r in extra_routers or []:
        app.include_router(r)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app
