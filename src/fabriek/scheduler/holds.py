"""One cycle's holds of flexible jobs for cleaner hours: deadlines before carbon.

A flexible job (one with a latest start) may be held back while the forecast has a cleaner
hour before its latest start (`carbon.py`), but only to an hour at which its GPUs and grid
power are sure to be there beside everything the cycle has already promised
(`carbon_hold.Ledger`, `carbon_hold.safe_hold`). The cycle (`policy._Cycle`) asks
`CycleHolds.hold` per flexible job, in its own order, and records the Wait.
"""

from __future__ import annotations

import math

from fabriek.scheduler.carbon import ShiftConfig, planned_lengths, run_share_sample
from fabriek.scheduler.carbon_hold import HoldAsk, Ledger, safe_hold
from fabriek.scheduler.placement import Capacity, Sites
from fabriek.scheduler.snapshot import PendingJob, Snapshot


class CycleHolds:
    """The holds of one cycle: its ledger of promises (built on the first hold), and the
    planned run lengths per time-limit class, shared by the jobs of a class."""

    def __init__(self, snapshot: Snapshot, capacity: Capacity, shift: ShiftConfig) -> None:
        self.snap = snapshot
        self.capacity = capacity
        self.shift = shift
        self.now = snapshot.now_s
        self._lengths: dict[int, tuple[float, ...]] = {}
        self._run_shares: tuple[float, ...] | None = None
        self._ledger: Ledger | None = None
        self._gpu_watts = 0.0

    def hold(self, job: PendingJob, sites: Sites, room: bool) -> tuple[float, str] | None:
        """Until when, and in which words, a flexible job is held back: where, at every
        site it may use (`sites`), the forecast has a whole hour, at least `guard_s` before
        its latest start, that beats starting now by the margin and at which its GPUs and
        grid power are sure to be there beside what the cycle has already promised. `room`:
        whether free capacity now exceeds what jobs that cannot wait ask for. None: not held.
        Either way its use is promised in the ledger (from now, or from its hour)."""
        shift = self.shift
        assert job.latest_start_s is not None
        signals = self.snap.signals
        ledger = self._promises()
        watts = job.gpus * self._gpu_watts
        hour_start = signals.start_s + signals.hour_of(self.now) * 3600.0
        latest_h = (job.latest_start_s - shift.guard_s - hour_start) / 3600.0
        held: tuple[float, str] | None = None
        if room and latest_h >= 1.0:
            # Time limits are taken in quarter octaves (within 9 %), so that jobs share
            # the planned lengths and the forecast's costs of each start.
            octaves = round(4 * math.log2(max(job.time_limit_s, 60.0) / 3600.0))
            lengths = self._lengths.get(octaves)
            if lengths is None:
                if self._run_shares is None:
                    self._run_shares = run_share_sample(self.snap.run_shares)
                lengths = planned_lengths(2.0 ** (octaves / 4), self._run_shares)
                self._lengths[octaves] = lengths
            ask = HoldAsk(job.gpus, watts, job.time_limit_s, lengths, latest_h)
            held = self._plan(sites, hour_start, ask, ledger)
        if held is None:
            ledger.promise(self.now, job.gpus, watts, job.time_limit_s)
            return None
        ledger.promise(held[0], job.gpus, watts, job.time_limit_s)
        return held

    def _promises(self) -> Ledger:
        """The cycle's ledger of promised GPUs and watts (`carbon_hold.Ledger`), built on first
        use from the snapshot: running jobs until their time limits end, and every job
        that cannot wait (no latest start, or past it) as if it started now."""
        if self._ledger is not None:
            return self._ledger
        snap, capacity, now = self.snap, self.capacity, self.now
        where = capacity.where
        # A pending job is counted at the dearest GPU's power: an upper bound.
        self._gpu_watts = max((p.watts for p in capacity.pools), default=0.0)
        free = sum(n.free for s in snap.sites for n in s.nodes)
        used = 0.0
        held: list[tuple[float, int, float]] = []
        for job in snap.running:
            watts = 0.0
            for share in job.nodes:
                found = where.get((job.site, share.node))
                watts += share.gpus * (found[0].watts if found else self._gpu_watts)
            used += watts
            held.append((job.expected_end_s, job.gpus, watts))
        for waiting in snap.pending:
            if waiting.submit_time_s > now or (
                waiting.latest_start_s is not None and waiting.latest_start_s > now
            ):
                continue
            watts = waiting.gpus * self._gpu_watts
            free -= waiting.gpus
            used += watts
            held.append((now + waiting.time_limit_s, waiting.gpus, watts))
        budget = None
        if capacity.capped:
            signals, names = snap.signals, [s.name for s in snap.sites]

            def budget(t0: float, t1: float) -> float:
                return sum(signals.budget_kw(n, t0, t1) for n in names) * 1000.0

        self._ledger = Ledger(now, free, used, budget, held)
        return self._ledger

    def _plan(
        self, sites: Sites, hour_start: float, ask: HoldAsk, ledger: Ledger
    ) -> tuple[float, str] | None:
        """Until when a flexible job is held, and the words; None: it is not held."""
        shift = self.shift
        signals = self.snap.signals
        names = [s.name for s in self.snap.sites if sites is None or s.name in sites]
        offset_h = (self.now - hour_start) / 3600.0
        chosen: tuple[int, float, float] | None = None
        for name in names:
            profile = signals.forecast(name, self.now, shift.heat_weight, shift.forecast_days)
            if profile is None:
                return None
            found = safe_hold(profile, hour_start, offset_h, ask, shift.margin, ledger)
            if found is None:
                return None
            if chosen is None or found[0] < chosen[0]:
                chosen = found
        if chosen is None:
            return None
        hours, best, now_cost = chosen
        until = hour_start + hours * 3600.0
        return (
            until,
            f"forecast {best:,.0f} against {now_cost:,.0f} now, for {until - self.now:,.0f} s",
        )
