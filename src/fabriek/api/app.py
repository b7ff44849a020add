"""Building the application: `create_app(settings)` and nothing at import time."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from sqlalchemy.orm import Session, sessionmaker
from starlette.routing import Mount

from fabriek import __version__
from fabriek.api import edge, problems, store_errors
from fabriek.api.body_limit import BodyLimitMiddleware
from fabriek.api.context import AppContext, assurance_rules, new_submitters, utc_now
from fabriek.api.gateway.wiring import build_gateway
from fabriek.api.metrics import MetricsMiddleware, RequestMetrics, UnwrittenUsage
from fabriek.api.rate_limits import Limits, RateLimitMiddleware
from fabriek.api.routers import (
    accounts,
    audit,
    control_plane,
    datasets,
    endpoint_keys,
    endpoints,
    health,
    jobs,
    notifications,
    partners,
    reference,
    registry,
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
from fabriek.services.control_plane import ControlPlane, open_control_plane
from fabriek.services.datasets.vault import sweep_storage
from fabriek.services.factory_metrics import FactoryCollector
from fabriek.services.identity.tokens import PrincipalCache
from fabriek.services.jobs import ProjectRefCache
from fabriek.services.jobs.submissions import SubmissionWriter
from fabriek.settings import Settings

VERSIONED = (
    tokens, reference, sites, organisations, users, projects, jobs, notifications,
    allocations, calls, proposals, usage, audit, datasets, ai_systems, models, sandboxes,
    support, site_agent, terms, ssh_access, site_agent_ssh, accounts,
    site_accounting, suspensions, registry, endpoints, endpoint_keys, control_plane, partners,
)  # fmt: skip


def _lifespan(
    plane: ControlPlane,
    settings: Settings,
    writes: sessionmaker[Session],
    run_dispatcher: bool,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's life: the dispatcher's thread (where this server holds its lease) and the
    storage sweep at start; the gateway's usage written, the dispatcher and the submission
    threads stopped at the end."""
    sessions, vault, dispatcher = plane.sessions, plane.vault, plane.dispatcher

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        thread = threading.Thread(
            target=dispatcher.run,
            args=(stop, settings.dispatch_interval_s),
            name="dispatcher",
            daemon=True,
        )
        # With several API processes (on one machine or many), the one that holds the
        # dispatcher's lease in the store dispatches; every one serves requests, and their
        # submissions are picked up at the leader's next cycle.
        leases = plane.leases if run_dispatcher else None
        if leases is not None:
            leases.start()
        # What a killed upload left behind is removed before anyone can count it.
        sweep_storage(sessions, vault)
        if leases is not None:
            thread.start()
        yield
        # Usage the gateway gathered is written before the process ends.
        await app.state.gateway.close()
        stop.set()
        dispatcher.wake.set()
        if leases is not None:
            thread.join(timeout=30)
            leases.stop()  # handed back: the next server need not wait for it to run out
        dispatcher.close()
        # The submission threads end with the app; a restarted app gets new ones.
        ctx = app.state.context
        ctx.submitters.shutdown(wait=True)
        ctx.submitters = new_submitters()
        if ctx.writer is not None:
            ctx.writer.close()
            ctx.writer = SubmissionWriter(writes)

    return lifespan


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
    # The group-commit writer has connections of its own: requests wait on it, so it must
    # never wait for theirs (issue 20: requests that hung on PostgreSQL).
    writes = plane.side_sessions or sessions

    app = FastAPI(
        lifespan=_lifespan(plane, settings, writes, run_dispatcher),
        title="Fabriek",
        version=__version__,
        description="The control plane of a sovereign AI factory.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        # Every route's input checked once, before the route's own (see api/edge.py).
        dependencies=[Depends(edge.guard)],
    )
    assurance_rules(settings.assurance_minimums)  # a wrong setting stops the start, here
    app.state.context = AppContext(
        settings=settings,
        engine=plane.engine,
        sessions=sessions,
        dispatcher=dispatcher,
        site_shapes=plane.shapes,
        access=plane.access,
        principals=PrincipalCache(plane.watch),
        project_refs=ProjectRefCache(plane.watch),
        writer=SubmissionWriter(writes),
        images=plane.images,
        partners=plane.partners,
    )
    # Requests, the factory's state (read from the store by every server) and the
    # dispatcher's cycles and cluster calls (this server's, while it leads).
    app.state.metrics = RequestMetrics(
        FactoryCollector(sessions, utc_now, plane.access, dispatcher.registry.kind),
        dispatcher.metrics,
    )
    app.state.vault = vault
    app.state.leases = plane.leases
    _install_routes(app, extra_routers or [])
    _install_middleware(app, settings)
    return app


def _install_routes(app: FastAPI, extra_routers: list[APIRouter]) -> None:
    """Problem documents, the API's routes, the OpenAI-compatible gateway and the extras."""
    problems.install(app)
    store_errors.install(app)
    edge.document(app)
    app.include_router(health.router)
    for module in VERSIONED:
        app.include_router(module.router)
    app.include_router(datasets.keys_router)
    # The OpenAI-compatible gateway at <fabriek>/v1 (OpenAI clients' base_url): a raw ASGI
    # app, outside the API's dependency injection, for a lean hot path.
    app.state.gateway = build_gateway(app.state.context)
    app.state.metrics.registry.register(UnwrittenUsage(app.state.gateway.meter.pending))
    # First in the routing table: matched before the API's hundreds of routes are tried.
    app.router.routes.insert(0, Mount("/v1", app=app.state.gateway))
    for r in extra_routers:
        app.include_router(r)


def _install_middleware(app: FastAPI, settings: Settings) -> None:
    """The body limit, the rate limits and the metrics, innermost first."""
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    # Outside the body limit (a throttled caller's body is not read at all), inside the
    # metrics (a 429 is counted like any answer).
    app.add_middleware(
        RateLimitMiddleware, limits=Limits.of(settings), refused=app.state.metrics.throttled
    )
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
