"""Carbon-aware timing: a forecast from past hours only, the cost of a start, and when
to shift a flexible job. The hourly series of actual values, the perfect-foresight
optimum (the oracle) and the carbon file's reader are in `carbon_series.py`; whether a
hold keeps the job's deadline, in `carbon_hold.py`.

**Forecast (seasonal naive, per hour of day).** At a decision in hour `k` of a series,
the forecast for any later hour of the same hour of day is the mean of the last
`FORECAST_DAYS` (7) observed values at that hour of day, all from hours before `k`. It
uses nothing that is unknown at decision time, has no fitted constant, and captures the
daily cycle (solar at midday, the evening peak) that makes shifting pay; a week smooths
single odd days. An hour of day with no observation in the last week means no forecast,
and no shifting.

**Departures fade, they do not vanish.** The last observed hour's departure from that
profile is carried forward, fading by an hourly factor estimated (AR(1), least squares)
from the departures of the same past week: hour `t` ahead is forecast as
`profile(t) + departure x decay^(t+1)`, constant within the hour as the series is. The
daily profile alone cannot tell a windless spell from a windy one, and for jobs of a day
or more the daily cycle averages out; the fading departure is what lets them gain from
weather that is already visible.

**How long a job runs is a distribution, not its time limit.** The scheduler never sees a
run time, only the limit, and most runs end well before it. The fractions of their limit
that recently ended runs used (`run_share_sample`: `RUN_SHARE_POINTS` equally likely
points of that distribution; with no history, evenly spread over (0, 1]: a run is as
likely to end at any point before its limit) give the job's planned run lengths. Since a
run's energy falls in the hours it is still running, the expected carbon of a start at
`s` is the mean, over those lengths `l`, of the forecast's integral over `[s, s + l)`;
the cost of a start is that, per expected hour of running (so it stays in g/kWh). Planned
lengths stop at `PLAN_HORIZON_H` (three days): beyond that the daily cycle averages out.

**Shifting.** A flexible job (one with a latest start) may be held back while a later
hour start, at least the guard (an hour by default) before its latest start, costs less
than starting now (by a margin, 0 by default: the job's owner declared that it may wait,
so any expected gain is taken); it is then held until that hour. Within
the guard of its latest start it is never held, and the policy treats it as urgent, so
that it has that hour to find GPUs. Shifting only ever delays: it never starts a
job before its submission or before it may start. The point forecast is compared, not
a risk-adjusted one: penalising (or favouring) later hours by the forecast's error at
their lead time, estimated from its own past errors, lost saving in every direction
tried (see docs/benchmarks.md).

**Deadlines before carbon.** A job is held only to an hour at which its GPUs and grid
power are sure to be there over its whole time limit (`carbon_hold.py`).

**Heat.** The cost of an hour is `carbon x (1 - heat_weight x heat_demand)`, with heat
demand the share (0..1) of its yearly peak: heat reused is worth most when it is wanted.
`heat_weight` is the operator's choice (0: carbon only). Heat demand is a calendar
profile, known ahead, so only carbon is forecast: the forecast's carbon of each hour is
multiplied by that hour's own heat factor.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

HOUR_S = 3600.0
DAY_HOURS = 24
FORECAST_DAYS = 7
DEFAULT_MARGIN = 0.0
DEFAULT_HEAT_WEIGHT = 0.5
DEFAULT_GUARD_S = 3600.0
# Planned run lengths: this many equally likely points of the run-share distribution, and
# no longer than three days (the daily cycle averages out beyond).
RUN_SHARE_POINTS = 8
PLAN_HORIZON_H = 72.0
# The shells learn run shares from this many of the latest ended runs.
RUN_SHARE_MEMORY = 1000


@dataclass(frozen=True, slots=True)
class ShiftConfig:
    """How flexible jobs are shifted: a later hour must cost less than now by `margin`
    (a share: 0.05 is 5 %; 0 by default, as waiting within its slack is what the job
    offered, and the measured default gains most: see docs/benchmarks.md); an hour costs `carbon x (1 - heat_weight x heat_demand)`;
    a job is released at least `guard_s` before its latest start, so that it has that
    long to find GPUs (the policy makes it urgent from then on)."""

    margin: float = DEFAULT_MARGIN
    heat_weight: float = DEFAULT_HEAT_WEIGHT
    forecast_days: int = FORECAST_DAYS
    guard_s: float = DEFAULT_GUARD_S

    def __post_init__(self) -> None:
        if not 0 <= self.margin < 1:
            raise ValueError(f"shift margin must be in [0, 1), got {self.margin}")
        if not 0 <= self.heat_weight <= 1:
            raise ValueError(f"heat weight must be between 0 and 1, got {self.heat_weight}")
        if self.guard_s < 0:
            raise ValueError(f"guard must be at least 0 s, got {self.guard_s}")
        if self.forecast_days < 1:
            raise ValueError(f"forecast days must be at least 1, got {self.forecast_days}")


def hour_cost(carbon: float, heat_demand: float | None, heat_weight: float) -> float:
    """The cost of running in an hour: carbon, lowered where heat is in demand."""
    return carbon * (1.0 - heat_weight * (heat_demand or 0.0))


# --- The forecast --------------------------------------------------------------------------


def seasonal_profile(
    values: Sequence[float | None], now_hour: int, days: int = FORECAST_DAYS
) -> tuple[float, ...] | None:
    """The forecast from hour `now_hour` on: element `k` (0..23) forecasts hours
    `now_hour + k + 24 m` (any m >= 0) as the mean of the last `days` values at that hour
    of day before `now_hour`. None where an hour of day has no such value."""
    profile: list[float] = []
    n = len(values)
    for k in range(DAY_HOURS):
        total, count = 0.0, 0
        for d in range(1, days + 1):
            j = now_hour + k - DAY_HOURS * d
            if 0 <= j < n:
                v = values[j]
                if v is not None:
                    total += v
                    count += 1
        if count == 0:
            return None
        profile.append(total / count)
    return tuple(profile)


def persistence(
    values: Sequence[float | None], profile: Sequence[float], now_hour: int
) -> tuple[float, float]:
    """How far the last observed hour stood from the daily profile, and how fast such a
    departure fades: (deviation, hourly decay), an AR(1) of the departures from the profile
    over the given past hours (least squares through the origin, clipped to [0, 0.99]).
    Weather moves the grid for days (a windless spell, a storm front); the daily profile
    alone cannot see it, and long jobs gain only from it. (0, 0) without two consecutive
    observations."""
    n = min(len(values), now_hour)

    def departure(j: int) -> float | None:
        v = values[j] if 0 <= j < n else None
        return None if v is None else v - profile[(j - now_hour) % DAY_HOURS]

    num = den = 0.0
    for j in range(1, n):
        a, b = departure(j - 1), departure(j)
        if a is not None and b is not None:
            num += a * b
            den += a * a
    last = departure(n - 1)
    if last is None or den <= 0:
        return 0.0, 0.0
    return last, min(max(num / den, 0.0), 0.99)


class Profile:
    """A forecast of the hourly cost from the current hour's start, hour by hour (costs are
    constant within an hour, as the series they forecast): hour `t` from now costs
    `carbon(t) x (1 - heat_weight x heat[t])`, with `carbon(t) = values[t mod 24] + level x
    decay^(t+1)` and `heat[t]` the known heat demand of that hour (0 beyond `heat`).
    Integrals over any window are O(1): the hours are summed once, as far as asked."""

    __slots__ = ("costs", "decay", "heat", "heat_weight", "later", "level", "prefix", "values")

    def __init__(
        self,
        values: Sequence[float],
        level: float = 0.0,
        decay: float = 0.0,
        heat: Sequence[float | None] = (),
        heat_weight: float = 0.0,
    ) -> None:
        assert len(values) == DAY_HOURS
        self.values = tuple(values)
        self.level = level if decay > 0.0 else 0.0
        self.decay = decay
        self.heat_weight = heat_weight
        self.heat = tuple(h or 0.0 for h in heat) if heat_weight > 0 else ()
        # The hours forecast so far and their running sums, and per planned run the
        # cheapest whole-hour start from 1 h up to each hour (caches, not state).
        self.costs: list[float] = []
        self.prefix = [0.0]
        self.later: dict[tuple[float, ...], list[tuple[int, float]]] = {}

    def _extend(self, hours: int) -> None:
        t = len(self.costs)
        departure = self.level * self.decay ** (t + 1)
        heat, weight, values = self.heat, self.heat_weight, self.values
        while t < hours:
            cost = values[t % DAY_HOURS] + departure
            if t < len(heat):
                cost *= 1.0 - weight * heat[t]
            self.costs.append(cost)
            self.prefix.append(self.prefix[-1] + cost)
            departure *= self.decay
            t += 1

    def integral(self, x: float) -> float:
        """The forecast integrated over [0, x) hours (x >= 0), in value x hours."""
        h = int(x)
        if h >= len(self.costs):
            self._extend(max(h + 1, 2 * len(self.costs), 4 * DAY_HOURS))
        return self.prefix[h] + (x - h) * self.costs[h]

    def mean(self, x: float, length_h: float) -> float:
        """The forecast's mean over [x, x + length_h) hours (the value at x for 0)."""
        if length_h <= 0:
            h = int(x)
            self.integral(float(h))
            return self.costs[h]
        return (self.integral(x + length_h) - self.integral(x)) / length_h

    def expected(self, x: float, lengths: Sequence[float]) -> float:
        """The cost of a start at x hours for a run whose length is equally likely to be
        any of `lengths` (hours, each > 0): the expected integral over the run per
        expected hour of running, i.e. the energy-weighted mean cost."""
        start = self.integral(x)
        total = sum(lengths)
        return sum(self.integral(x + length) - start for length in lengths) / total

    def cheapest_later(self, lengths: tuple[float, ...], last: int) -> tuple[int, float]:
        """The whole hour h in [1, last] (last >= 1) whose start costs least for a run of
        `lengths` (`expected`), and that cost; the earliest such hour on a tie."""
        best = self.later.setdefault(lengths, [])
        while len(best) < last:
            h = len(best) + 1
            cost = self.expected(float(h), lengths)
            best.append((h, cost) if not best or cost < best[-1][1] else best[-1])
        return best[last - 1]


def run_share_sample(shares: Iterable[float], points: int = RUN_SHARE_POINTS) -> tuple[float, ...]:
    """`points` equally likely values of the share of its time limit a run uses, from
    observed shares (each clipped into (0, 1]): the middles of `points` equal slices of
    the sorted observations. Without observations, the middles of `points` equal slices
    of (0, 1] (any end before the limit equally likely). Ascending."""
    return sample_of_sorted(sorted(clip_share(s) for s in shares if math.isfinite(s)), points)


def clip_share(share: float) -> float:
    """A run's share of its time limit, into (0, 1]: a run that ended at once still ran."""
    return min(1.0, max(share, 1e-6))


def sample_of_sorted(seen: Sequence[float], points: int = RUN_SHARE_POINTS) -> tuple[float, ...]:
    """`run_share_sample` of shares already clipped and in ascending order."""
    if not seen:
        return tuple((2 * i + 1) / (2 * points) for i in range(points))
    n = len(seen)
    return tuple(seen[(2 * i + 1) * n // (2 * points)] for i in range(points))


def planned_lengths(time_limit_h: float, shares: Sequence[float]) -> tuple[float, ...]:
    """The run lengths (hours) a job of this time limit is planned over: each share of
    the limit, at most `PLAN_HORIZON_H` and at least a minute (nothing runs for 0 h)."""
    return tuple(min(PLAN_HORIZON_H, max(1 / 60, share * time_limit_h)) for share in shares)


def best_start(
    profile: Profile,
    offset_h: float,
    latest_h: float,
    lengths: Sequence[float],
    margin: float,
) -> tuple[int, float, float] | None:
    """When to start a job whose run is equally likely to last any of `lengths` hours,
    `offset_h` hours into the current hour (0 <= offset_h < 1), that may start up to
    `latest_h` hours from the current hour's start: the whole hour (1 <= h <= latest_h)
    whose start costs least (`Profile.expected`), with that cost and the cost of starting
    now, if it beats starting now by `margin`; else None (start now)."""
    last = math.floor(latest_h)
    if last < 1:
        return None
    now_cost = profile.expected(offset_h, lengths)
    best_h, best_cost = profile.cheapest_later(tuple(lengths), last)
    # A gain within rounding is no gain: a flat forecast never holds a job.
    if best_cost >= now_cost * (1.0 - margin) - 1e-9 * abs(now_cost):
        return None
    return best_h, best_cost, now_cost
