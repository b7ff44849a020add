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
from fabriek.services.access.config import load_access_config
from fabriek.services.accounts.ssh_ca import ca_key_file
from fabriek.services.ai_act.rules import ai_act_rules
from fabriek.services.ai_act.systems import load_rule_book
from fabriek.services.datasets.vault import Vault
from fabriek.services.housekeeping import housekeeping
from fabriek.services.identity.tokens import PRINCIPAL_TABLES, installation_id
from fabriek.services.jobs import SiteShapeCache
from fabriek.services.jobs.dispatch import Dispatcher
from fabriek.services.jobs.engine_registry import EngineRegistry, load_sites_file, tag_prefix
from fabriek.services.jobs.harvest_pull import AccountingPull
from fabriek.services.support.config import load_support_config
from fabriek.settings import Settings
from fabriek.store.db import database_files, make_engine, make_sessions
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


def open_control_plane(settings: Settings, clock: Callable[[], datetime]) -> ControlPlane:
    """Connect to the store and build the dispatcher over the configured sites. Refuses
    (StoreError, InvalidInput) a database whose schema is not this code's, and a malformed
    configuration file, now rather than at the first request that reads it."""
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
    # What no job may read, besides the state folder: the store, the keys (the master key,
    # the SSH CA's), the datasets.
    private = [
        *database_files(settings.database_url),
        vault.objects.root,
        vault.master_key_file,
        ca_key_file(settings.state_dir),
    ]
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
        clock,
        observe_every_s=settings.dispatch_interval_s,
        shapes=shapes,
        access=access,
        housekeeping=housekeeping(sessions, settings, access),
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
    )
    # Who a token is and which project a name means are cached for seconds; writes through
    # this engine to what they are read from are seen at once (see `TableWatch`).
    watch = TableWatch(engine, (*PRINCIPAL_TABLES, "projects"))
    return ControlPlane(engine, sessions, access, vault, shapes, dispatcher, watch)
