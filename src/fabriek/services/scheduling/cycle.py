"""One scheduling cycle: load (store -> values), decide (pure), apply (decisions -> store)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from fabriek.domain.access.tracks import AccessConfig
from fabriek.domain.capacity import SiteShape
from fabriek.domain.units import GpuHours
from fabriek.scheduler.carbon import DEFAULT_HEAT_WEIGHT
from fabriek.scheduler.queue_index import PendingQueue
from fabriek.services.scheduling.applying import apply
from fabriek.services.scheduling.deciding import decide
from fabriek.services.scheduling.loading import load
from fabriek.services.scheduling.plans import Placed


def run_cycle(
    session: Session,
    shapes: Sequence[SiteShape],
    now: datetime,
    depth: Mapping[str, int],
    down: frozenset[str],
    down_reasons: Mapping[str, str],
    access: AccessConfig,
    usage: Mapping[tuple[str, str], GpuHours] | None = None,
    heat_weight: float = DEFAULT_HEAT_WEIGHT,
    run_shares: Sequence[float] | None = None,
    queue: PendingQueue | None = None,
) -> Placed:
    """Read the factory, schedule, and write the decisions (not committed). `usage` is the
    users' decayed recent usage and `run_shares` what share of their limits recent runs
    used (each read from the store when not given). `heat_weight` weighs heat demand
    against carbon in timing flexible jobs. A started job is charged to its project's
    current allocation at its GPU type's factor. `queue`: the waiting jobs' index, kept by
    the caller from one cycle to the next (see `load`)."""
    loaded = load(session, shapes, now, depth, down, down_reasons, access, usage, run_shares, queue)
    if loaded is None:
        return Placed()
    return apply(session, decide(loaded.cycle, access, heat_weight), loaded.reasons, now)
