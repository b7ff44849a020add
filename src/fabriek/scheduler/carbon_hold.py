"""Deadlines before carbon: what the GPUs and the grid can still take, and whether a
flexible job may be held back to a cleaner hour without risking its latest start.

A job is held only to an hour at which, over its whole time
limit, its GPUs and grid power fit beside everything already promised: running jobs and
jobs that cannot wait until their time limits end, and the jobs held before it at their
hours (`Ledger`, `safe_hold`). Limits bound runs from above, so an overestimated limit
costs saving, never a deadline. The policy also keeps each held job's GPUs in the spare
capacity of the cycle, so that jobs that cannot wait let it go while it can still start.

The forecast's costs come from `carbon.Profile`; the policy asks `safe_hold` for each
flexible job of a cycle, in order, and promises the hour it chose in the cycle's `Ledger`.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from fabriek.scheduler.carbon import HOUR_S, Profile


class Ledger:
    """The GPUs and grid power a cycle has already promised, from now on: what a held job
    may count on when its hour comes. Pure bookkeeping; every figure is an upper bound on
    use, so that a hold it admits is safe whatever the runs turn out to be:

    - a running job (and a job that cannot wait, counted from now) holds its GPUs and
      watts until its time limit ends (runs end before it, often long before: an
      overestimate costs only saving, never a deadline);
    - a held job holds them over `[release, release + time limit)`.

    Free GPUs at a time `t` are those free now, plus those of jobs whose limits have ended
    by `t`, less those promised over `t`; free watts likewise, under the least grid budget
    of the window asked about (`budget_w(t0, t1)`, inf without one). Between two starts of
    promises, what is free only grows (limits end), so a window fits if it fits at its
    start and at every promise starting inside it."""

    __slots__ = ("_ends", "_gpu_back", "_promises", "_watt_back", "budget_w", "free_gpus",
                 "now_s", "used_w")  # fmt: skip

    def __init__(
        self,
        now_s: float,
        free_gpus: int,
        used_w: float = 0.0,
        budget_w: Callable[[float, float], float] | None = None,
        running: Iterable[tuple[float, int, float]] = (),
    ) -> None:
        self.now_s = now_s
        self.free_gpus = free_gpus
        self.used_w = used_w
        self.budget_w = budget_w
        # Running jobs by the end of their limits, with running sums of what comes back.
        ends = sorted((max(end, now_s), gpus, watts) for end, gpus, watts in running)
        self._ends = [e for e, _, _ in ends]
        self._gpu_back = [0]
        self._watt_back = [0.0]
        for _, gpus, watts in ends:
            self._gpu_back.append(self._gpu_back[-1] + gpus)
            self._watt_back.append(self._watt_back[-1] + watts)
        self._promises: list[tuple[float, float, int, float]] = []  # (start, end, gpus, watts)

    def _free_at(self, t: float) -> tuple[int, float]:
        """GPUs and watts (before the budget) free at `t`: returned by then, less promised
        over `t`."""
        k = bisect.bisect_right(self._ends, t)
        gpus, watts = self.free_gpus + self._gpu_back[k], self._watt_back[k] - self.used_w
        for start, end, g, w in self._promises:
            if start <= t < end:
                gpus -= g
                watts -= w
        return gpus, watts

    def fits(self, start_s: float, gpus: int, watts: float, length_s: float) -> bool:
        """Whether a job of `gpus` GPUs drawing `watts` fits over `[start_s, start_s +
        length_s)` beside everything promised (start_s >= now)."""
        end = start_s + max(length_s, 1.0)
        budget = self.budget_w(start_s, end) if self.budget_w is not None else math.inf
        points = [start_s] + [p[0] for p in self._promises if start_s < p[0] < end]
        for t in points:
            free, room = self._free_at(t)
            if free < gpus or room + budget < watts - 1e-6:
                return False
        return True

    def promise(self, start_s: float, gpus: int, watts: float, length_s: float) -> None:
        """Count a job as holding `gpus` and `watts` over `[start_s, start_s + length_s)`."""
        self._promises.append((start_s, start_s + max(length_s, 1.0), gpus, watts))

    def latest_safe_start(
        self, gpus: int, watts: float, length_s: float, candidates: Iterable[float]
    ) -> float | None:
        """The latest of `candidates` at which the job fits (`fits`); None if none."""
        found = [t for t in candidates if self.fits(t, gpus, watts, length_s)]
        return max(found, default=None)


@dataclass(frozen=True, slots=True)
class HoldAsk:
    """A flexible job asking to be held: its GPUs and grid watts, its time limit, its
    planned run lengths (hours), and how far it may wait from the current hour's start
    (`latest_h`: hours to its latest start less the guard)."""

    gpus: int
    watts: float
    limit_s: float
    lengths: tuple[float, ...]
    latest_h: float


def safe_hold(
    profile: Profile, hour_start_s: float, offset_h: float, ask: HoldAsk, margin: float,
    ledger: Ledger,
) -> tuple[int, float, float] | None:  # fmt: skip
    """Deadlines before carbon: the whole hour `h` (1 <= h <= latest_h) whose start costs
    least among those at which the job fits in `ledger` over its whole time limit, with
    that cost and the cost of starting now, if it beats starting now by `margin`; None:
    start now (no cleaner hour, or none at which its GPUs and watts are sure to be
    there). The hour is not promised: the caller does that."""
    last = math.floor(ask.latest_h)
    if last < 1:
        return None
    lengths = ask.lengths
    now_cost = profile.expected(offset_h, lengths)
    bar = now_cost * (1.0 - margin) - 1e-9 * abs(now_cost)
    # The cheapest hour first: most holds are decided by it alone.
    best_h, best_cost = profile.cheapest_later(lengths, last)
    if best_cost >= bar:
        return None
    if ledger.fits(hour_start_s + best_h * HOUR_S, ask.gpus, ask.watts, ask.limit_s):
        return best_h, best_cost, now_cost
    ranked = sorted((profile.expected(float(h), lengths), h) for h in range(1, last + 1))
    for cost, h in ranked:
        if cost >= bar:
            return None
        if ledger.fits(hour_start_s + h * HOUR_S, ask.gpus, ask.watts, ask.limit_s):
            return h, cost, now_cost
    return None
