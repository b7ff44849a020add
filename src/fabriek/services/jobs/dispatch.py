"""The dispatcher: keeps the store and the engines in agreement, one cycle at a time.

A cycle is load -> act -> apply, and never holds a transaction across a call to a cluster:
1. place: waiting jobs get a site (first fit for now) and become STARTING, committed
   *before* any engine hears of them, so a crash never loses a started job;
2. launch: every STARTING job without an engine handle is submitted. Engines' submissions
   are idempotent per Fabriek job id, so after a crash a resubmission adopts the job the
   cluster already has instead of starting it twice;
3. observe: one batched poll per site; the changes are applied by the state rules;
4. cancel: jobs whose cancel was requested are stopped on their cluster.
A site whose cluster does not answer is backed off (exponentially, up to a minute) and its
jobs wait with the reason shown, so an outage costs one log line, not a storm.

This module is the cycle that ties the steps together; placing is `fabriek.services.
scheduling`, launching `launches`, observing `observations`, cancelling `cancels`, and the
datasets staged for a run `staging`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from fabriek.domain.access.tracks import AccessConfig
from fabriek.domain.capacity import SiteShape
from fabriek.domain.leases import DISPATCHER, HOUSEKEEPING
from fabriek.domain.units import GpuHours
from fabriek.scheduler.carbon import DEFAULT_HEAT_WEIGHT
from fabriek.scheduler.queue_index import PendingQueue
from fabriek.services.access.config import load_access_config
from fabriek.services.datasets import Vault
from fabriek.services.images import ImageService
from fabriek.services.jobs.cancels import CancelSender
from fabriek.services.jobs.dispatch_base import DispatchContext
from fabriek.services.jobs.engine_registry import EngineRegistry
from fabriek.services.jobs.harvest_pull import AccountingPull
from fabriek.services.jobs.launches import Launcher
from fabriek.services.jobs.leadership import Gained, LeaseKeeper, LeaseLost
from fabriek.services.jobs.observations import Observer
from fabriek.services.jobs.shapes import SiteShapeCache
from fabriek.services.jobs.staging import DatasetStaging
from fabriek.services.scheduling import recent_run_shares, recent_usage, run_cycle

log = logging.getLogger("fabriek.dispatch")
# Notices and e-mail are about days and thresholds: once a minute is prompt enough.
HOUSEKEEPING_EVERY_S = 60.0
USAGE_EVERY_S = 60.0


@dataclass
class CycleReport:
    placed: int = 0
    launched: int = 0
    observed: int = 0
    changed: int = 0
    cancelled: int = 0
    sites_down: list[str] = field(default_factory=list)


class Dispatcher(DispatchContext):
    """Runs cycles against the store and the engines; one per control plane. Its steps are
    parts of their own (`Launcher`, `Observer`, `CancelSender`, `DatasetStaging`), sharing
    this dispatcher as their `DispatchContext`."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        registry: EngineRegistry,
        clock: Callable[[], datetime],
        submit_workers: int = 8,
        observe_every_s: float = 1.0,
        shapes: SiteShapeCache | None = None,
        access: AccessConfig | None = None,
        housekeeping: Callable[[datetime], object] | None = None,
        housekeeping_every_s: float = HOUSEKEEPING_EVERY_S,
        vault: Vault | None = None,
        staging_root: Path | None = None,
        heat_weight: float = DEFAULT_HEAT_WEIGHT,
        harvest: AccountingPull | None = None,
        images: ImageService | None = None,
        leases: LeaseKeeper | None = None,
    ) -> None:
        """`shapes` is shared with the API, so a site registered there is seen at once.
        `housekeeping(now)` runs about once a minute (notices, e-mail). Jobs that read
        datasets get them decrypted under `staging_root` (with `vault`'s keys) while they
        run; without a vault such jobs fail to start. `heat_weight` weighs heat demand
        against carbon when flexible jobs are timed. `harvest` reads Slurm sites' accounting
        into the ledger, off the cycle's path. `images` pins a job's container image by
        digest and gives it a pull credential for the factory's registry. With `leases`, it
        dispatches only while this server holds the dispatcher's lease, and housekeeps only
        while it holds the housekeeping's; without, it always does both."""
        super().__init__(sessions, registry, clock, leases)
        self.heat_weight = heat_weight
        self.access = access or load_access_config()
        self.housekeeping = housekeeping
        self.housekeeping_every_s = housekeeping_every_s
        self._housekept_at = float("-inf")
        self.shapes = shapes or SiteShapeCache()
        # The waiting jobs as the index the scheduler orders and checks over its columns,
        # kept from cycle to cycle (`fabriek sim` replays with one too): one code path.
        self.queue = PendingQueue()
        self.wake = threading.Event()
        self.staging = DatasetStaging(self, vault, staging_root)
        # Cancels for sites that do not answer are retried off the cycle's thread.
        self.cancels = CancelSender(self, self.wake)
        self.launcher = Launcher(self, self.staging, images, submit_workers)
        self.observer = Observer(self, self.staging, self.cancels)
        # Wake-ups (submissions, cancels) start jobs at once; watching the clusters is paced,
        # so a burst of submissions does not become a burst of full-queue polls.
        self.observe_every_s = observe_every_s
        self._observed_at = float("-inf")
        self._usage: dict[tuple[str, str], GpuHours] = {}
        self._usage_read_at = float("-inf")
        self._run_shares: list[float] = []
        self.harvest = harvest

    # -- the loop ----------------------------------------------------------------------------

    def run(self, stop: threading.Event, interval_s: float, min_gap_s: float = 0.1) -> None:
        """Cycle until `stop` is set; a submission or cancel wakes it early, but cycles are
        at least `min_gap_s` apart, so a burst of submissions shares one cycle."""
        while not stop.is_set():
            began = time.monotonic()
            try:
                self._step()
            except LeaseLost as exc:  # another server dispatches now: this one stops
                log.warning("dispatcher cycle dropped: %s", exc)
            except Exception:  # a bad cycle must not kill the loop; the next one retries
                log.exception("dispatcher cycle failed")
            self.wake.wait(interval_s)
            self.wake.clear()
            rest = min_gap_s - (time.monotonic() - began)
            if rest > 0 and not stop.is_set():
                time.sleep(rest)

    def _step(self) -> None:
        """One cycle of what this server's leases let it do."""
        if self.leases is None:
            self.cycle()
            return
        for gained in self.leases.gained():
            if gained.role == DISPATCHER:
                self._took_over(gained)
        dispatch, housekeep = self.leases.holds(DISPATCHER), self.leases.holds(HOUSEKEEPING)
        if dispatch or housekeep:
            self.cycle(dispatch=dispatch, housekeep=housekeep)

    def _took_over(self, gained: Gained) -> None:
        """This server dispatches from now: what it remembered of the clusters is stale
        (another server submitted and cancelled meanwhile), so it asks them afresh."""
        log.info("dispatching from now (epoch %s)", gained.epoch)
        self.registry.forget_remote()
        self.cancels.forget()
        self._observed_at = float("-inf")
        if gained.inherits:  # held back until their old submissions have surely landed
            self.launcher.hold_inherited()

    def cycle(self, dispatch: bool = True, housekeep: bool = True) -> CycleReport:
        report = CycleReport()
        if dispatch:
            self._dispatch(report)
        if (
            housekeep
            and self.housekeeping is not None
            and time.monotonic() - self._housekept_at >= self.housekeeping_every_s
        ):
            self._housekept_at = time.monotonic()
            try:
                self.staging.sweep()
                self.housekeeping(self.clock())
            except Exception:  # notices are retried next time; jobs must keep flowing
                log.exception("housekeeping failed")
        return report

    def _dispatch(self, report: CycleReport) -> None:
        began = time.perf_counter()
        # Cancels first: a cluster that comes back hears of them before anything else.
        report.cancelled = self.cancels.send()
        shapes = self._shapes()
        report.placed = self._place(shapes)
        # Jobs this cycle preempted are told before the jobs they make room for start.
        report.cancelled += self.cancels.send()
        report.launched = self.launcher.launch()
        if time.monotonic() - self._observed_at >= self.observe_every_s:
            self._observed_at = time.monotonic()
            report.observed, report.changed = self.observer.observe()
        if self.harvest is not None:  # in a thread of its own: the cycle does not wait
            self.harvest.tick(s for s in self.gpus if self.registry.kind(s) != "local")
        report.sites_down = sorted(s for s, h in self.health.items() if h.down_since is not None)
        self.metrics.cycle_done(time.perf_counter() - began)

    def close(self) -> None:
        self.cancels.close()
        self.launcher.close()
        if self.harvest is not None:
            self.harvest.close()

    # -- sites ---------------------------------------------------------------------------------

    def _shapes(self) -> list[SiteShape]:
        # Sites change a few times a year: the cycle reads them through the cache.
        with self.sessions() as session:
            shapes = self.shapes.get(session)
        self.gpus = {s.name: sum(g.count * g.gpus_per_node for g in s.groups) for s in shapes}
        return shapes

    # -- place --------------------------------------------------------------------------------

    def _place(self, shapes: list[SiteShape]) -> int:
        """One scheduling cycle over every site: `fabriek.scheduler.schedule`, the same
        function the simulator replays traces with."""
        down = frozenset(s.name for s in shapes if not self.available(s.name))
        depth = {s.name: self.registry.queue_depth(s.name, self.gpus[s.name]) for s in shapes}
        reasons = {s: self.health[s].reason for s in down}
        now = self.clock()
        with self.sessions() as session:
            # Fair-share usage moves by the hour: reading it once a minute is plenty.
            if time.monotonic() - self._usage_read_at > USAGE_EVERY_S:
                self._usage = recent_usage(session, now.timestamp())
                self._run_shares = recent_run_shares(session, now)
                self._usage_read_at = time.monotonic()
            scheduling = time.perf_counter()
            placed = run_cycle(
                session, shapes, now, depth, down, reasons, self.access, self._usage,
                self.heat_weight, self._run_shares, self.queue,
            )  # fmt: skip
            self.metrics.scheduling.observe(time.perf_counter() - scheduling)
            self.fence(session)
            session.commit()
        return placed.started
