"""Screening forecasts and decision rules for carbon-aware shifting, fast, on many windows.

Each flexible job is timed on its own (no capacity: the cluster always has room), as the
production rule does it: at its submission and at every hour start after, it starts now
unless a whole hour at least the guard before its latest start costs less
(`carbon.best_start`); jobs, slack, time limits and the oracle are those of
`bench/carbon_shift.py` (seeded). Without queueing this is not the replay, but it
reproduces the replay's share of the oracle's saving within a point or two, in seconds,
so a change can be checked on every zone and several windows before it is replayed.

Variants (each from data before the decision's hour only, no fitted constant):
- `production`: the 7-day hour-of-day mean plus the last departure, fading (AR(1)).
- `profile-only`: the 7-day mean alone.  `days-14`: a 14-day mean, same departure.
- `blend`: the 7-day mean blended with yesterday's same hour, weights by the inverse of
  each one's day-ahead squared error over the past week (online), same departure.
- `risk+K`, `risk-K`: the production forecast, later hours' costs raised (+) or lowered
  (-) by K x (how much larger the forecast's error is at that lead than now), the error
  by lead measured from the forecast's own past week (its RMS).
- `perfect`: the actual series (an upper bound for any forecast).
Plans: `limit` (the whole time limit) or `run` (the run-share learned by the replay, which
with limits of twice the duration is one half).

    .venv/bin/python bench/carbon_forecasts.py [--variants production,blend] [--plans run]
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from fabriek.scheduler import load_trace
from fabriek.scheduler.carbon import (
    DEFAULT_GUARD_S,
    Profile,
    persistence,
    planned_lengths,
    seasonal_profile,
)
from fabriek.scheduler.carbon_series import load_carbon, oracle_mean, parse_utc

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TRACE = DATA / "traces" / "philly_2017.csv"
WINDOWS = ("NL:2023-03-01", "NL:2022-10-01", "NL:2021-06-01", "DE:2023-03-01",
           "DE:2022-10-01", "FR:2023-03-01", "FR:2022-01-15", "GB:2023-03-01",
           "GB:2021-11-01")  # fmt: skip
DAY = 24
WEEK = 7 * DAY

Forecaster = Callable[[Sequence[float], int], Profile | None]


def production(values: Sequence[float], k: int, days: int = 7) -> Profile | None:
    """The forecast production makes at hour k (see `Signals.forecast`)."""
    window = list(values[max(0, k - days * DAY) : k])
    profile = seasonal_profile(window, len(window), days)
    if profile is None:
        return None
    level, decay = persistence(window, profile, len(window))
    return Profile(profile, level, decay)


def profile_only(values: Sequence[float], k: int) -> Profile | None:
    window = list(values[max(0, k - WEEK) : k])
    profile = seasonal_profile(window, len(window), 7)
    return None if profile is None else Profile(profile)


def blend(values: Sequence[float], k: int) -> Profile | None:
    if k < 2 * WEEK:
        return None
    mean_err = yday_err = 0.0
    for origin in range(k - WEEK, k, DAY):
        past = seasonal_profile(list(values[origin - WEEK : origin]), WEEK, 7)
        assert past is not None
        for j in range(DAY):
            mean_err += (past[j] - values[origin + j]) ** 2
            yday_err += (values[origin + j - DAY] - values[origin + j]) ** 2
    w = (1 / mean_err) / (1 / mean_err + 1 / yday_err) if mean_err and yday_err else 1.0
    window = list(values[k - WEEK : k])
    profile = seasonal_profile(window, WEEK, 7)
    assert profile is not None
    mixed = [w * profile[j] + (1 - w) * values[k + j - DAY] for j in range(DAY)]
    level, decay = persistence(window, mixed, WEEK)
    return Profile(mixed, level, decay)


class Perfect(Profile):
    """The actual hours from k on, as a forecast."""

    def __init__(self, values: Sequence[float], k: int) -> None:
        super().__init__([0.0] * DAY)
        self.costs = list(values[k : k + 30 * DAY])
        for v in self.costs:
            self.prefix.append(self.prefix[-1] + v)


FORECASTS: dict[str, Forecaster] = {
    "production": production,
    "profile-only": profile_only,
    "days-14": lambda v, k: production(v, k, 14),
    "blend": blend,
    "perfect": Perfect,
}


class Timer:
    """Times each flexible job alone, with forecasts cached by hour."""

    def __init__(self, values: Sequence[float], forecast: Forecaster, risk: float) -> None:
        self.values = values
        self.forecast = forecast
        self.risk = risk
        self.cache: dict[int, Profile | None] = {}
        self.errors: dict[int, list[float]] = {}

    def profile(self, k: int) -> Profile | None:
        if k not in self.cache:
            self.cache[k] = self.forecast(self.values, k)
        return self.cache[k]

    def error_by_lead(self, k: int, leads: int) -> list[float]:
        """RMS error of the forecasts of the past week by lead (0..leads), non-decreasing."""
        if len(self.errors.get(k, ())) <= leads:
            total, count = [0.0] * (leads + 1), [0] * (leads + 1)
            for origin in range(k - WEEK, k):
                p = self.profile(origin)
                if p is None:
                    continue
                for lead in range(min(leads + 1, k - origin)):
                    total[lead] += (p.mean(float(lead), 0.0) - self.values[origin + lead]) ** 2
                    count[lead] += 1
            out, last = [], 0.0
            for t, n in zip(total, count, strict=True):
                last = max(last, math.sqrt(t / n)) if n >= DAY else last
                out.append(last)
            self.errors[k] = out
        return self.errors[k]

    def start(self, t_h: float, latest_h: float, lengths: Sequence[float]) -> float:
        """When (hours on the series) a job submitted at t_h starts."""
        guard = DEFAULT_GUARD_S / 3600.0
        while True:
            k = math.floor(t_h)
            last = math.floor(latest_h - guard - k)
            p = self.profile(k)
            if last < 1 or p is None:
                return t_h
            now = p.expected(t_h - k, lengths)
            sigma = self.error_by_lead(k, last) if self.risk else None
            best = now
            for h in range(1, last + 1):
                cost = p.expected(float(h), lengths)
                if sigma is not None:
                    cost += self.risk * (sigma[h] - sigma[0])
                best = min(best, cost)
            if best >= now - 1e-9 * abs(now):
                return t_h
            t_h = k + 1.0


def share_of_oracle(
    zone: str, start: str, variant: str, plan: str, args: argparse.Namespace
) -> float:
    dated = load_carbon(DATA / "carbon" / f"electricitymaps_{zone}_2021-2023_hourly.csv")
    zero = parse_utc(start)
    offset_h = (zero - dated.start).total_seconds() / 3600.0
    series = dated.on_clock(zero)
    risk = 0.0
    name = variant
    if variant.startswith("risk"):
        risk, name = float(variant[4:]), "production"
    timer = Timer(dated.values, FORECASTS[name], risk)
    rows = load_trace(args.trace)[: args.first]
    rng = random.Random(args.seed)
    saved = best = 0.0
    for r in rows:
        if rng.random() >= args.share or r.duration_s <= 0:
            continue
        slack = args.slack_h * 3600.0
        limit_h = 2.0 * r.duration_s / 3600.0
        lengths = planned_lengths(limit_h, (1.0,) if plan == "limit" else (0.5,))
        t_h = r.submit_time_s / 3600.0 + offset_h
        began = (timer.start(t_h, t_h + args.slack_h, lengths) - offset_h) * 3600.0
        energy = r.num_gpus * r.duration_s
        now = series.mean(r.submit_time_s, r.duration_s)
        saved += energy * (now - series.mean(began, r.duration_s))
        best += energy * (now - oracle_mean(series, r.submit_time_s, slack, r.duration_s))
    return saved / best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", type=Path, default=TRACE)
    ap.add_argument("--first", type=int, default=20_000)
    ap.add_argument("--share", type=float, default=0.5)
    ap.add_argument("--slack-h", type=float, default=12.0)
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--windows", default=",".join(WINDOWS), help="ZONE:DATE,...")
    ap.add_argument("--variants", default="production,profile-only,days-14,blend,perfect")
    ap.add_argument("--plans", default="limit,run")
    args = ap.parse_args()
    if not args.trace.exists():
        print(f"missing {args.trace}: the shared data folder is needed", file=sys.stderr)
        return 2
    windows = [w.split(":") for w in args.windows.split(",")]
    print(f"Command: `.venv/bin/python bench/carbon_forecasts.py {' '.join(sys.argv[1:])}`")
    print("\nShare of the oracle's saving, each flexible job timed alone (no capacity):\n")
    print("| forecast | plan | " + " | ".join(f"{z} {d}" for z, d in windows) + " | mean |")
    print("|---|---|" + "---:|" * (len(windows) + 1))
    for variant in args.variants.split(","):
        for plan in args.plans.split(","):
            found = [share_of_oracle(z, d, variant, plan, args) for z, d in windows]
            cells = " | ".join(f"{x:.1%}" for x in found)
            print(f"| {variant} | {plan} | {cells} | {sum(found) / len(found):.1%} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
