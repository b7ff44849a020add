"""The control plane's running parts, built from settings: the store (refused when its schema
is not this code's), the engines behind their dispatcher, and the dataset vault.

The API and the portal are built on top of these; they reach the store and the engines only
through them and the other services.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from fabriek.domain.access.tracks import AccessConfig
from fabriek.domain.leases import LeaseTerms
from fabriek.services.access.config import load_access_config
from fabriek.services.accounts.ssh_ca import ca_key_file
from fabriek.services.ai_act.rules import ai_act_rules
from fabriek.services.ai_act.systems import load_rule_book
from fabriek.services.datasets.vault import Vault
from fabriek.services.endpoints.scaling import endpoint_chore, with_endpoints
from fabriek.services.housekeeping import housekeeping
from fabriek.services.identity.tokens import PRINCIPAL_TABLES, installation_id
from fabriek.services.images import ImageService
from fabriek.services.jobs import SiteShapeCache
from fabriek.services.jobs.dispatch import Dispatcher
from fabriek.services.jobs.engine_registry import (
    EngineConfig,
    EngineRegistry,
    container_runtimes,
    load_sites_file,
    partner_sites,
    tag_prefix,
    unstaged_sites,
)
from fabriek.services.jobs.harvest_pull import AccountingPull
from fabriek.services.jobs.leadership import LeaseKeeper
from fabriek.services.partners import Partners, load_partners
from fabriek.services.support.config import load_support_config
from fabriek.services.web_apps.idle import idle_notebook_chore, with_idle_stops
from fabriek.settings import Settings
from fabriek.store.db import DatabaseLimits, database_files, make_engine, make_sessions
from fabriek.store.migrate import require_current
from fabriek.store.watch import TableWatch


@dataclass(frozen=True)
class ControlPlane:
    """What serving needs: the store's engine and sessions, the access rules, the vault,
    the site shapes the scheduler reads, the dispatcher (not yet running), and a watch on
    the tables whose cached reads (principals, project names) writes must invalidate."""

    engine: Engine
    sessions: sessionmaker[Session]
    access: AccessConfig
    vault: Vault
    shapes: SiteShapeCache
    dispatcher: Dispatcher
    watch: TableWatch
    # The factory's image registry, None when it runs none (FABRIEK_REGISTRY unset).
    images: ImageService | None = None
    # This server's leases on the dispatcher's and the housekeeping's roles (not yet kept).
    leases: LeaseKeeper | None = None
    # Sessions of a small pool of their own, for the threads that requests wait on (the
    # submissions' group-commit writer) and for the leases: a pool busy with requests can
    # never starve them. None: they use `sessions`.
    side_sessions: sessionmaker[Session] | None = None
    # The partner factories this one runs jobs for (None: FABRIEK_PARTNERS_FILE unset).
    partners: Partners | None = None


def database_limits(settings: Settings, side: bool = False) -> DatabaseLimits:
    """The store's limits from the settings; `side`: for the small pool of the writer and
    the leases (a few connections, the same time-outs)."""
    return DatabaseLimits(
        pool_size=2 if side else settings.database_pool_size,
        max_overflow=1 if side else settings.database_max_overflow,
        pool_timeout_s=settings.database_pool_timeout_s,
        statement_timeout_s=settings.database_statement_timeout_s or None,
        lock_timeout_s=settings.database_lock_timeout_s or None,
    )


def open_control_plane(settings: Settings, clock: Callable[[], datetime]) -> ControlPlane:
    """Connect to the store and build the dispatcher over the configured sites. Refuses
    (StoreError, InvalidInput) a database whose schema is not this code's, and a malformed
    configuration file, now rather than at the first request that reads it."""
    engine = make_engine(settings.database_url, database_limits(settings))
    require_current(engine)
    sessions = make_sessions(engine)
    side_sessions = make_sessions(
        make_engine(settings.database_url, database_limits(settings, True))
    )
    configs = load_sites_file(settings.sites_file) if settings.sites_file else {}
    # A malformed partners file (or key) stops the start too.
    partners = load_partners(settings.partners_file) if settings.partners_file else None
    access = load_access_config(settings.access_file)
    _check_config_files(settings)
    with sessions() as session:
        prefix = tag_prefix(installation_id(session))
    vault = Vault.from_settings(settings)
    registry = _engine_registry(settings, configs, prefix, vault)
    shapes = SiteShapeCache(
        containers=container_runtimes(configs),
        unstaged=unstaged_sites(configs),
        partners=partner_sites(configs),
    )
    images = ImageService.from_settings(settings)
    ttl = settings.lease_ttl_s
    leases = LeaseKeeper(side_sessions, LeaseTerms(ttl, renew_every_s=ttl / 4, margin_s=ttl / 6))
    dispatcher = Dispatcher(
        sessions,
        registry,
        clock,
        observe_every_s=settings.dispatch_interval_s,
        shapes=shapes,
        access=access,
        housekeeping=with_endpoints(
            with_idle_stops(
                housekeeping(sessions, settings, access),
                idle_notebook_chore(sessions, lambda site: registry.engine(site, 0), settings),
            ),
            # Endpoints' replicas: health, replacement, rollout, scaling (idempotent).
            endpoint_chore(
                sessions, lambda site: registry.engine(site, 0), settings.state_dir, images
            ),
        ),
        housekeeping_every_s=settings.housekeeping_interval_s,
        vault=vault,
        staging_root=settings.state_dir / "staging",
        heat_weight=settings.heat_weight,
        # Slurm sites' accounting into the ledger; only sites with an engine that reads it.
        harvest=AccountingPull(
            sessions,
            lambda site: registry.engine(site, 0),
            clock,
            access,
            prefix,
            settings.harvest_interval_s,
        ),
        images=images,
        leases=leases,
    )
    # Who a token is and which project a name means are cached for seconds; writes through
    # this engine to what they are read from are seen at once (see `TableWatch`).
    watch = TableWatch(engine, (*PRINCIPAL_TABLES, "projects"))
    return ControlPlane(
        engine, sessions, access, vault, shapes, dispatcher, watch, images, leases,
        side_sessions, partners,
    )  # fmt: skip


def _check_config_files(settings: Settings) -> None:
    """Read the configuration files a request would read later: a broken one stops the
    start, not a request."""
    # The AI Act rules for models (the shipped file).
    ai_act_rules()
    # The risk-classification rules: a malformed one stops the server now, not the first
    # classification.
    load_rule_book(settings.ai_act_rules_file)
    # The support file (routing, service levels).
    load_support_config(settings.support_file)


def _engine_registry(
    settings: Settings, configs: dict[str, EngineConfig], prefix: str, vault: Vault
) -> EngineRegistry:
    """The engines of the configured sites, with the paths no local job may read."""
    # What no job may read, besides the state folder: the store, the keys (the master key,
    # the SSH CA's), the datasets.
    private = [
        *database_files(settings.database_url),
        vault.objects.root,
        vault.master_key_file,
        ca_key_file(settings.state_dir),
    ]
    return EngineRegistry(
        settings.state_dir,
        configs,
        settings.local_gpus,
        prefix,
        private_paths=private,
        id_base=settings.local_id_base,
    )
