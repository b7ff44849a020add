"""What every step of a dispatcher's cycle shares: the store, the engines, the clock, the
lease it commits under, and how each site's cluster is doing.

The dispatcher (`dispatch`) is one of these; its steps (`launches`, `observations`,
`cancels`, `staging`) are handed it, so a site that fails in one step is backed off for all.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from fabriek.domain.leases import DISPATCHER
from fabriek.engines.base import Engine
from fabriek.services.jobs.dispatch_metrics import DispatchMetrics
from fabriek.services.jobs.engine_registry import EngineRegistry
from fabriek.services.jobs.leadership import LeaseKeeper
from fabriek.services.jobs.site_health import SiteHealth
from fabriek.store.tables import JobRow


class DispatchContext:
    """The store, the engines and the sites' health, shared by the steps of a cycle."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        registry: EngineRegistry,
        clock: Callable[[], datetime],
        leases: LeaseKeeper | None = None,
    ) -> None:
        """With `leases`, commits are fenced by the dispatcher's lease; without, never."""
        self.sessions = sessions
        self.registry = registry
        self.clock = clock
        self.leases = leases
        self.health: dict[str, SiteHealth] = defaultdict(SiteHealth)
        # Cycle times, calls to the clusters, sites up: read by /metrics.
        self.metrics = DispatchMetrics(self.health)
        # GPUs per site, as last read from the sites' shapes: an engine is sized by them.
        self.gpus: dict[str, int] = {}

    def engine(self, site: str) -> Engine:
        """The engine of `site`'s cluster."""
        return self.registry.engine(site, self.gpus.get(site, 0))

    def available(self, site: str) -> bool:
        """Whether `site` may be called now (it is not backed off)."""
        return self.health[site].available()

    def site_failed(self, site: str, reason: str) -> None:
        """`site` did not answer: back it off."""
        self.health[site].failed(site, reason)

    def site_ok(self, site: str) -> None:
        """`site` answered: it is back."""
        self.health[site].ok(site)

    def fence(self, session: Session) -> None:
        """Commit only as the dispatcher (LeaseLost otherwise)."""
        if self.leases is not None:
            self.leases.fence(session, DISPATCHER)


def wait(job: JobRow, reason: str) -> None:
    """Show why a job waits."""
    if job.reason != reason:  # write only what changed
        job.reason = reason


def unplace(job: JobRow) -> None:
    """Forget where a job was to run: it waits to be placed again."""
    job.site_id = None
    job.placed_gpu_type = None
    job.placement = None
