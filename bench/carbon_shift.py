"""Carbon-aware shifting on the development trace: CO2 saved against immediate start and
against the perfect-foresight optimum, deadline misses, grid-cap violations, JCT cost;
with a heat profile, the trade-off between CO2 and energy used when heat is wanted.

A window of `philly_2017.csv` (`--first` jobs after the first `--skip`, re-based so that
the window's first submission is time 0) is replayed with the `fabriek` policy, time 0 at
`--start` on the hourly carbon series (NL 2023 by default). A share of the jobs (`--share`,
drawn with a seeded RNG, so the same jobs every run) get `slack_s = --slack-h` hours; the
shared trace file is not changed. Time limits are the duration x 2 (the simulator's
default), or with `--limit-spread LO,HI` the duration x a factor drawn log-uniformly in
[LO, HI] per job (seeded): users overestimate by different amounts.

`--plans` compares how runs are planned: `learned` (production: from the runs that ended
so far), `even` (an even spread over the limit, nothing learned), `limit` (the whole time
limit, the method before run lengths were planned). Each setting replays twice (with
shifting, and the same jobs without it) and computes the oracle.

    .venv/bin/python bench/carbon_shift.py [--first 20000] [--nodes 125] [--caps 0,250]
        [--plans learned,even,limit] [--heat FILE --heat-weights 0,0.5,1]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import platform
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from fabriek.scheduler import TraceRow, load_trace, run_simulation
from fabriek.scheduler.carbon import ShiftConfig
from fabriek.scheduler.carbon_series import HourlySeries, load_carbon, oracle_mean, parse_utc
from fabriek.scheduler.metrics import JobOutcome
from fabriek.scheduler.power import PowerModel
from fabriek.scheduler.sim_energy import EnergySetup
from fabriek.services.energy.heat import read_heat_profile

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TRACE = DATA / "traces" / "philly_2017.csv"
CARBON = DATA / "carbon" / "electricitymaps_NL_2021-2023_hourly.csv"

CLASSES = (("< 1 h", 1.0), ("1-4 h", 4.0), ("4-16 h", 16.0), (">= 16 h", float("inf")))
# How each plan sets the run shares the scheduler plans with (None: learned).
PLANS: dict[str, tuple[float, ...] | None] = {"learned": None, "even": (), "limit": (1.0,)}


def by_duration(
    rows: list[TraceRow],
    shifted: Sequence[JobOutcome],
    args: argparse.Namespace,
    setup: EnergySetup,
) -> dict[str, list[float]]:
    """Per class of true run time, over jobs with slack: count, CO2 saved against the
    same replay without shifting, and the oracle's saving against it."""
    plain = run_simulation(rows, args.nodes, args.gpus_per_node,
                           energy=dataclasses.replace(setup, shift=None, compare=False))  # fmt: skip
    series = setup.carbon
    assert series is not None
    slack = {r.job_id: r.slack_s for r in rows}
    out = {name: [0.0, 0.0, 0.0] for name, _ in CLASSES}
    for a, b in zip(shifted, plain.outcomes, strict=True):
        s = slack.get(a.job_id)
        if s is None or a.run_s <= 0:
            continue
        kwh = a.gpus * setup.power.grid_watts("gpu") / 1000.0 * a.run_s / 3600.0
        immediate = series.mean(b.start_s, a.run_s)
        best = oracle_mean(series, a.submit_s, s, a.run_s)
        name = next(n for n, upper in CLASSES if a.run_s < upper * 3600.0)
        row = out[name]
        row[0] += 1
        row[1] += kwh * (immediate - series.mean(a.start_s, a.run_s)) / 1000.0
        row[2] += kwh * (immediate - best) / 1000.0
    return out


def window(args: argparse.Namespace) -> list[TraceRow]:
    """The replayed jobs: the window, re-based, with slack and time limits drawn."""
    rows = load_trace(args.trace)[args.skip : args.skip + args.first]
    zero = rows[0].submit_time_s if rows else 0.0
    rng = random.Random(args.seed)
    limits = random.Random(args.seed + 1)
    out = []
    for r in rows:
        slack = args.slack_h * 3600.0 if rng.random() < args.share else None
        limit = None
        if args.limit_spread:
            lo, hi = args.limit_spread
            limit = r.duration_s * math.exp(limits.uniform(math.log(lo), math.log(hi)))
        out.append(dataclasses.replace(r, submit_time_s=r.submit_time_s - zero, slack_s=slack,
                                       time_limit_s=limit))  # fmt: skip
    return out


def spread(text: str) -> tuple[float, float]:
    lo, _, hi = text.partition(",")
    low, high = float(lo), float(hi)
    if not 0 < low <= high:
        raise argparse.ArgumentTypeError(f"{text!r}: give LO,HI with 0 < LO <= HI")
    return low, high


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", type=Path, default=TRACE)
    ap.add_argument("--carbon", type=Path, default=CARBON)
    ap.add_argument("--start", default="2023-03-01", help="where the trace's time 0 falls")
    ap.add_argument("--first", type=int, default=30_000, help="replay N jobs")
    ap.add_argument("--skip", type=int, default=0, help="after the first N jobs of the trace")
    ap.add_argument("--nodes", type=int, default=85)
    ap.add_argument("--gpus-per-node", type=int, default=8)
    ap.add_argument("--share", type=float, default=0.5, help="share of jobs with slack")
    ap.add_argument("--slack-h", type=float, default=12.0)
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--limit-spread", type=spread, default=None,
                    help="LO,HI: time limit = duration x a factor log-uniform in [LO, HI]")  # fmt: skip
    ap.add_argument("--caps", default="0", help="grid caps in kW per site, 0: none")
    ap.add_argument("--plans", default="learned", help="learned, even, limit (comma-separated)")
    ap.add_argument("--heat", type=Path, default=None, help="ETM hourly heat profile CSV")
    ap.add_argument("--heat-weights", default="0", help="heat weights to replay (with --heat)")
    ap.add_argument("--no-classes", action="store_true", help="skip the table by run time")
    args = ap.parse_args()
    for path in (args.trace, args.carbon, *([args.heat] if args.heat else [])):
        if not path.exists():
            print(f"missing {path}: the shared data folder is needed", file=sys.stderr)
            return 2
    plans = [p.strip() for p in args.plans.split(",")]
    if any(p not in PLANS for p in plans):
        print(f"--plans: choose from {', '.join(PLANS)}", file=sys.stderr)
        return 2
    rows = window(args)
    dated = load_carbon(args.carbon)
    series = dated.on_clock(parse_utc(args.start))
    heat = None
    if args.heat is not None:
        profile = read_heat_profile(args.heat)
        heat = HourlySeries(series.start_s, profile.series(dated.start, len(dated.values)))
    weights = [float(w) for w in args.heat_weights.split(",")]
    power = PowerModel()
    print(f"Command: `.venv/bin/python bench/carbon_shift.py {' '.join(sys.argv[1:])}`".rstrip())
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    limits = (
        f"time limit = duration x log-uniform [{args.limit_spread[0]:g}, {args.limit_spread[1]:g}]"
        if args.limit_spread
        else "time limit = duration x 2"
    )
    print(
        f"\n{args.trace.name}, jobs {args.skip:,} to {args.skip + len(rows):,}, time 0 at "
        f"{args.start} on {args.carbon.name}, {args.nodes * args.gpus_per_node} GPUs; "
        f"{args.share:.0%} of jobs with {args.slack_h:g} h slack (seed {args.seed}); {limits}; "
        f"power model: utilisation {power.utilisation}, PUE {power.pue}\n"
    )
    print(
        "| plan | heat weight | grid cap kW | CO2 immediate t | CO2 shifted t | CO2 oracle t "
        "| saved t | saved % | share of oracle's saving | deadline misses (immediate) "
        "| cap violations (immediate) | avg JCT h shifted / immediate "
        "| avg wait h shifted / immediate | heat-weighted MWh shifted / immediate (share of energy) "
        "| replay s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    classes: dict[str, list[float]] = {}
    for plan in plans:
        for weight in weights:
            for cap_text in args.caps.split(","):
                cap = float(cap_text) or None
                setup = EnergySetup(
                    power=power,
                    carbon=series,
                    heat=heat,
                    grid_cap_kw=cap,
                    shift=ShiftConfig(heat_weight=weight),
                    run_shares=PLANS[plan],
                )
                t0 = time.perf_counter()
                result = run_simulation(rows, args.nodes, args.gpus_per_node, energy=setup)
                took = time.perf_counter() - t0
                e = result.energy
                assert e is not None
                assert e.co2_kg is not None and e.co2_kg_immediate is not None
                assert e.co2_kg_oracle is not None
                saved = e.co2_kg_immediate - e.co2_kg
                oracle_saved = e.co2_kg_immediate - e.co2_kg_oracle
                share = saved / oracle_saved if oracle_saved > 0 else float("nan")
                jct, jct0 = result.summary.avg_jct_s / 3600, (e.avg_jct_s_immediate or 0) / 3600
                wait, wait0 = result.summary.avg_wait_s / 3600, (e.avg_wait_s_immediate or 0) / 3600
                hot = "-"
                if e.heat_weighted_kwh is not None and e.heat_weighted_kwh_immediate is not None:
                    hot = (
                        f"{e.heat_weighted_kwh / 1000:,.1f} / "
                        f"{e.heat_weighted_kwh_immediate / 1000:,.1f} "
                        f"({e.heat_weighted_kwh / e.energy_kwh:.2%} / "
                        f"{e.heat_weighted_kwh_immediate / e.energy_kwh:.2%})"
                    )
                print(
                    f"| {plan} | {weight:g} | {cap_text if cap else 'none'} "
                    f"| {e.co2_kg_immediate / 1000:,.2f} | {e.co2_kg / 1000:,.2f} "
                    f"| {e.co2_kg_oracle / 1000:,.2f} | {saved / 1000:,.2f} "
                    f"| {saved / e.co2_kg_immediate:.2%} | {share:.1%} "
                    f"| {e.deadline_misses} ({e.deadline_misses_immediate}) "
                    f"| {e.grid_cap_violations} ({e.grid_cap_violations_immediate}) "
                    f"| {jct:.2f} / {jct0:.2f} | {wait:.2f} / {wait0:.2f} | {hot} | {took:.0f} |"
                )
                sys.stdout.flush()
                if cap is None and not classes and not args.no_classes and weight == 0:
                    classes = by_duration(rows, result.outcomes, args, setup)
    if classes:
        print(f"\nWithout a cap, plan {plans[0]}, jobs with slack by true run time (kg CO2e):\n")
        print("| run time | jobs | saved vs immediate | oracle's saving | share |")
        print("|---|---:|---:|---:|---:|")
        for name, (n, got, best) in classes.items():
            ratio = f"{got / best:.1%}" if best > 0 else "-"
            print(f"| {name} | {n:,.0f} | {got:,.1f} | {best:,.1f} | {ratio} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
