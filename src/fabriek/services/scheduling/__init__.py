"""The live side of the scheduler: a snapshot from the store, decisions back into it.

The scheduling itself is `fabriek.scheduler.schedule`, the very function the simulator
replays traces with. This package only reads the factory into a `Snapshot` and turns
`Start`/`Preempt`/`Wait` decisions into state changes, in one transaction.

The package holds the cycle's steps: `loading` (store -> `CycleInput`), `deciding` (pure:
`CycleInput` -> `CyclePlan`), `applying` (`CyclePlan` -> store), `cycle` (the three in
one transaction), `signals` (what is weighed beside GPUs) and `plans` (the values passed).
"""

from fabriek.services.scheduling.applying import apply
from fabriek.services.scheduling.cycle import run_cycle
from fabriek.services.scheduling.deciding import decide
from fabriek.services.scheduling.loading import PENDING_BATCH, load
from fabriek.services.scheduling.plans import (
    CycleInput,
    CyclePlan,
    Eviction,
    Launch,
    LoadedCycle,
    Placed,
)
from fabriek.services.scheduling.signals import (
    CARBON_HISTORY_DAYS,
    RUN_SHARE_DAYS,
    USAGE_HALF_LIVES,
    recent_run_shares,
    recent_usage,
    site_signals,
)

__all__ = [
    "CARBON_HISTORY_DAYS",
    "PENDING_BATCH",
    "RUN_SHARE_DAYS",
    "USAGE_HALF_LIVES",
    "CycleInput",
    "CyclePlan",
    "Eviction",
    "Launch",
    "LoadedCycle",
    "Placed",
    "apply",
    "decide",
    "load",
    "recent_run_shares",
    "recent_usage",
    "run_cycle",
    "site_signals",
]
