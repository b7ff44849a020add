"""Carbon-aware shifting on the development trace: CO2 saved against immediate start and
against the perfect-foresight optimum, deadline misses, grid-cap violations, JCT cost.

A window of `philly_2017.csv` (the first `--first` jobs) is replayed with the `fabriek`
policy, time 0 at `--start` on the hourly carbon series (NL 2023 by default). A share of
the jobs (`--share`, drawn with a seeded RNG, so the same jobs every run) get
`slack_s = --slack-h` hours; the shared trace file is not changed. Each setting replays
twice (with shifting, and the same jobs without it) and computes the oracle.

    .venv/bin/python bench/carbon_shift.py [--first 30000] [--nodes 85] [--caps 0,250]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from fabriek.scheduler import TraceRow, load_trace, run_simulation
from fabriek.scheduler.carbon import ShiftConfig, load_carbon, oracle_mean, parse_utc
from fabriek.scheduler.metrics import JobOutcome
from fabriek.scheduler.power import PowerModel
from fabriek.scheduler.simulate import EnergySetup

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TRACE = DATA / "traces" / "philly_2017.csv"
CARBON = DATA / "carbon" / "electricitymaps_NL_2021-2023_hourly.csv"


CLASSES = (("< 1 h", 1.0), ("1-4 h", 4.0), ("4-16 h", 16.0), (">= 16 h", float("inf")))


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", type=Path, default=TRACE)
    ap.add_argument("--carbon", type=Path, default=CARBON)
    ap.add_argument("--start", default="2023-03-01", help="where the trace's time 0 falls")
    ap.add_argument("--first", type=int, default=30_000, help="replay the first N jobs")
    ap.add_argument("--nodes", type=int, default=85)
    ap.add_argument("--gpus-per-node", type=int, default=8)
    ap.add_argument("--share", type=float, default=0.5, help="share of jobs with slack")
    ap.add_argument("--slack-h", type=float, default=12.0)
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--caps", default="0", help="grid caps in kW per site, 0: none")
    ap.add_argument("--heat-weight", type=float, default=0.0)
    args = ap.parse_args()
    for path in (args.trace, args.carbon):
        if not path.exists():
            print(f"missing {path}: the shared data folder is needed", file=sys.stderr)
            return 2
    rng = random.Random(args.seed)
    rows = load_trace(args.trace)[: args.first]
    rows = [
        dataclasses.replace(r, slack_s=args.slack_h * 3600.0) if rng.random() < args.share else r
        for r in rows
    ]
    series = load_carbon(args.carbon).on_clock(parse_utc(args.start))
    power = PowerModel()
    print(f"Command: `.venv/bin/python bench/carbon_shift.py {' '.join(sys.argv[1:])}`".rstrip())
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(
        f"\n{args.trace.name}, first {len(rows):,} jobs, time 0 at {args.start}, "
        f"{args.nodes * args.gpus_per_node} GPUs; {args.share:.0%} of jobs with "
        f"{args.slack_h:g} h slack (seed {args.seed}); power model: utilisation "
        f"{power.utilisation}, PUE {power.pue}; heat weight {args.heat_weight}\n"
    )
    print(
        "| grid cap kW | CO2 immediate t | CO2 shifted t | CO2 oracle t | saved t | saved % "
        "| share of oracle's saving | deadline misses (immediate) | cap violations "
        "(immediate) | avg JCT h shifted / immediate | avg wait h shifted / immediate "
        "| replay s |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    classes: dict[str, list[float]] = {}
    for cap_text in args.caps.split(","):
        cap = float(cap_text) or None
        setup = EnergySetup(
            power=power,
            carbon=series,
            grid_cap_kw=cap,
            shift=ShiftConfig(heat_weight=args.heat_weight),
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
        print(
            f"| {cap_text if cap else 'none'} | {e.co2_kg_immediate / 1000:,.2f} "
            f"| {e.co2_kg / 1000:,.2f} | {e.co2_kg_oracle / 1000:,.2f} | {saved / 1000:,.2f} "
            f"| {saved / e.co2_kg_immediate:.2%} | {share:.1%} "
            f"| {e.deadline_misses} ({e.deadline_misses_immediate}) "
            f"| {e.grid_cap_violations} ({e.grid_cap_violations_immediate}) "
            f"| {jct:.2f} / {jct0:.2f} | {wait:.2f} / {wait0:.2f} | {took:.0f} |"
        )
        sys.stdout.flush()
        if cap is None:
            classes = by_duration(rows, result.outcomes, args, setup)
    if classes:
        print("\nWithout a cap, jobs with slack by true run time (kg CO2e):\n")
        print("| run time | jobs | saved vs immediate | oracle's saving | share |")
        print("|---|---:|---:|---:|---:|")
        for name, (n, got, best) in classes.items():
            ratio = f"{got / best:.1%}" if best > 0 else "-"
            print(f"| {name} | {n:,.0f} | {got:,.1f} | {best:,.1f} | {ratio} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
