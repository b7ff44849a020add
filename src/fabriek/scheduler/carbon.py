"""Carbon-aware timing: hourly series, a forecast from past hours only, the cost of a
start, when to shift a flexible job, and the perfect-foresight optimum (the oracle).

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

**Deadlines before carbon.** A job is held only to an hour at which, over its whole time
limit, its GPUs and grid power fit beside everything already promised: running jobs and
jobs that cannot wait until their time limits end, and the jobs held before it at their
hours (`Ledger`, `safe_hold`). Limits bound runs from above, so an overestimated limit
costs saving, never a deadline. The policy also keeps each held job's GPUs in the spare
capacity of the cycle, so that jobs that cannot wait let it go while it can still start.

**Heat.** The cost of an hour is `carbon x (1 - heat_weight x heat_demand)`, with heat
demand the share (0..1) of its yearly peak: heat reused is worth most when it is wanted.
`heat_weight` is the operator's choice (0: carbon only). Heat demand is a calendar
profile, known ahead, so only carbon is forecast: the forecast's carbon of each hour is
multiplied by that hour's own heat factor.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fabriek.domain.csv_files import CsvError, CsvTable, read_csv_file

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

CARBON_COLUMNS = ("datetime_utc", "carbon_intensity_gco2eq_per_kwh")


class CarbonError(CsvError):
    """A carbon series cannot be read; the message is one line naming where and what."""


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


# --- Deadlines before carbon: what the GPUs and the grid can still take ------------------


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


# --- Hourly series of actual values, and the oracle ---------------------------------------


class HourlySeries:
    """Actual hourly values from `start_s` (hour i covers [start_s + i h, start_s + (i+1) h)),
    with integrals over any interval inside it in O(1)."""

    __slots__ = ("prefix", "start_s", "values")

    def __init__(self, start_s: float, values: Sequence[float]) -> None:
        self.start_s = start_s
        self.values = tuple(values)
        self.prefix = [0.0]
        for v in self.values:
            self.prefix.append(self.prefix[-1] + v)

    @property
    def end_s(self) -> float:
        """Where the series ends (exclusive)."""
        return self.start_s + len(self.values) * HOUR_S

    def covers(self, t0: float, t1: float) -> bool:
        """Whether [t0, t1] lies within the series."""
        return self.start_s <= t0 and t1 <= self.end_s

    def _cum(self, t: float) -> float:
        x = (t - self.start_s) / HOUR_S
        h = min(max(math.floor(x), 0), len(self.values) - 1)
        return self.prefix[h] + (x - h) * self.values[h]

    def integral_h(self, t0: float, t1: float) -> float:
        """The values integrated over [t0, t1] seconds, in value x hours; t0 <= t1 and
        both inside the series (see `covers`)."""
        return self._cum(t1) - self._cum(t0)

    def mean(self, t0: float, duration_s: float) -> float:
        """The mean over [t0, t0 + duration_s); the value at t0 for a zero duration."""
        if duration_s <= 0:
            h = min(int((t0 - self.start_s) // HOUR_S), len(self.values) - 1)
            return self.values[h]
        return self.integral_h(t0, t0 + duration_s) * HOUR_S / duration_s


def oracle_mean(series: HourlySeries, submit_s: float, slack_s: float, duration_s: float) -> float:
    """The least mean value over a run of `duration_s` starting anywhere in
    [submit_s, submit_s + slack_s]: perfect foresight, no capacity limit.

    The mean of a step function over a sliding window is piecewise linear in the start,
    with breaks where the window's start or end crosses an hour boundary, so the minimum
    is at one of those starts or at an end of the range; all of them are tried."""
    lo, hi = submit_s, submit_s + max(0.0, slack_s)
    candidates = {lo, hi}
    if hi > lo:
        for shift in (0.0, duration_s):
            first = math.ceil((lo + shift - series.start_s) / HOUR_S)
            last = math.floor((hi + shift - series.start_s) / HOUR_S)
            for i in range(first, last + 1):
                t = series.start_s + i * HOUR_S - shift
                if lo <= t <= hi:
                    candidates.add(t)
    return min(series.mean(t, duration_s) for t in candidates)


# --- Reading a carbon file -----------------------------------------------------------------


def parse_utc(text: str) -> datetime:
    """An ISO-8601 date or time; without a zone it is taken as UTC. ValueError if not."""
    raw = text.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    value = datetime.fromisoformat(raw)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class CarbonSeries:
    """An hourly carbon-intensity series (g CO2e/kWh) from `start` (UTC, hour start)."""

    start: datetime
    values: tuple[float, ...]

    def on_clock(self, zero: datetime) -> HourlySeries:
        """The series on a clock whose time 0 is `zero`."""
        return HourlySeries((self.start - zero).total_seconds(), self.values)

    @property
    def end(self) -> datetime:
        """The end of the last hour."""
        return self.start + timedelta(hours=len(self.values))


def load_carbon(path: str | Path) -> CarbonSeries:
    """Read `datetime_utc,carbon_intensity_gco2eq_per_kwh` rows, consecutive hours;
    raises `CarbonError` (one line naming file, line and column) on bad input."""
    return read_csv_file(path, parse_carbon, CarbonError)


def parse_carbon(lines: Iterable[str], source: str = "carbon") -> CarbonSeries:
    """Parse CSV lines (header first) of an hourly carbon series: the first row at the start
    of an hour, every next row the next hour (no gaps, no repeats), every value a finite
    number >= 0. The one reader of this format: the grid load and the simulator use it."""
    time_column, value_column = CARBON_COLUMNS
    start: datetime | None = None
    values: list[float] = []
    for row in CsvTable(lines, source, CARBON_COLUMNS, CarbonError):
        raw_t = row.text(time_column)
        try:
            when = parse_utc(raw_t)
        except ValueError:
            raise row.problem(time_column, f"{raw_t!r} is not an ISO date-time") from None
        value = row.number(value_column)
        if start is None:
            if when.minute or when.second or when.microsecond:
                raise row.problem(time_column, f"{raw_t!r} is not the start of an hour")
            start = when
        elif when != start + timedelta(hours=len(values)):
            expected = (start + timedelta(hours=len(values))).strftime("%Y-%m-%dT%H:%M:%SZ")
            raise row.problem(
                time_column, f"{raw_t!r}, expected the next hour {expected} (hourly, no gaps)"
            )
        values.append(value)
    if start is None:
        raise CarbonError(f"{source}: no rows")
    return CarbonSeries(start, tuple(values))
