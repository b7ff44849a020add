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
    audit,
    datasets,
    health,
    jobs,
    notifications,
    reference,
    sites,
    support,
    usage,
)
from fabriek.api.routers.access import allocations, calls, proposals
from fabriek.api.routers.ai_act import models, sandboxes
from fabriek.api.routers.ai_act import systems as ai_systems
from fabriek.api.routers.identity import organisations, projects, tokens, users
from fabriek.services.access.config import load_access_config
from fabriek.services.ai_act.rules import ai_act_rules
from fabriek.services.ai_act.systems import load_rule_book
from fabriek.services.datasets.vault import Vault, sweep_storage
from fabriek.services.housekeeping import housekeeping
from fabriek.services.identity.tokens import PRINCIPAL_TABLES, PrincipalCache, installation_id
from fabriek.services.jobs import ProjectRefCache, SiteShapeCache
from fabriek.services.jobs.dispatch import Dispatcher
from fabriek.services.jobs.engine_registry import EngineRegistry, load_sites_file, tag_prefix
from fabriek.services.jobs.leadership import claim_dispatch
from fabriek.services.jobs.submissions import SubmissionWriter
from fabriek.services.support.config import load_support_config
from fabriek.settings import Settings
from fabriek.store.db import database_files, make_engine, make_sessions
from fabriek.store.migrate import require_current
from fabriek.store.watch import TableWatch

VERSIONED = (
    tokens, reference, sites, organisations, users, projects, jobs, notifications,
    allocations, calls, proposals, usage, audit, datasets, ai_systems, models, sandboxes,
    support,
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
    engine = make_engine(settings.database_url)
    require_current(engine)
    sessions = make_sessions(engine)
    configs = load_sites_file(settings.sites_file) if settings.sites_file else {}
    access = load_access_config(settings.access_file)
    # The AI Act rules file is checked now: a broken one stops the start, not a request.
    ai_act_rules()
    # A malformed rules file stops the server now, not the first classification.
    load_rule_book(settings.ai_act_rules_file)
    # A malformed support file (routing, service levels) stops the server now too.
    load_support_config(settings.support_file)
    with sessions() as session:
        prefix = tag_prefix(installation_id(session))
    vault = Vault.from_settings(settings)
    # What no job may read, besides the state folder: the store, the keys, the datasets.
    private = [*database_files(settings.database_url), vault.objects.root, vault.master_key_file]
    registry = EngineRegistry(
        settings.state_dir,
        configs,
        settings.local_gpus,
        prefix,
        private_paths=private,
        id_base=settings.local_id_base,
    )
    shapes = SiteShapeCache()
    dispatcher = Dispatcher(
        sessions,
        registry,
        utc_now,
        observe_every_s=settings.dispatch_interval_s,
        shapes=shapes,
        access=access,
        housekeeping=housekeeping(sessions, settings, access),
        housekeeping_every_s=settings.housekeeping_interval_s,
        vault=vault,
        staging_root=settings.state_dir / "staging",
        heat_weight=settings.heat_weight,
    )

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
    # Who a token is and which project a name means, cached for seconds; writes through
    # this engine to what they are read from are seen at once (see `TableWatch`).
    watch = TableWatch(engine, (*PRINCIPAL_TABLES, "projects"))
    app.state.context = AppContext(
        settings=settings,
        engine=engine,
        sessions=sessions,
        dispatcher=dispatcher,
        site_shapes=shapes,
        access=access,
        principals=PrincipalCache(watch),
        project_refs=ProjectRefCache(watch),
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
