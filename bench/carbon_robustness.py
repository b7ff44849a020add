"""Carbon-aware shifting over every month of every grid zone, with and without a binding
grid cap: the distribution (median, mean, worst) of each ratio against starting at once.

For each zone (NL, DE, FR, GB) and each month of 2021-2023 (144 zone-months), time 0 is
the month's first hour (UTC) and a fixed-size sample of `philly_2017.csv` is replayed:
a block of `--block` consecutive trace jobs (6,000: one to eight days of the trace), its
place in the trace drawn from the month (seeded, so every zone replays the same jobs in a
month and months see different stretches of the trace), each kept with probability
`1 / --thin` (12: about 500 jobs), jobs longer than `--max-run-d` (5) days left out so
that every run ends inside the series. The cluster is sized for an offered load of
`--load` (0.5: GPU-hours asked over GPU-hours there, across the block's span).
Half the jobs (seeded) may wait `--slack-h` hours; every time limit is its run x a
factor drawn log-uniformly in [1, 5] (seeded): users overestimate by different amounts,
never by exactly twice. The binding grid cap is `--cap-share` (0.6) of the cluster's
grid power with every GPU busy (power model defaults).

Each run replays twice (shifting, and the same jobs started at once) and computes the
perfect-foresight oracle (each flexible job alone at its best start within its slack, no
capacity limit). Per run: CO2 saved against starting at once (%), share of the oracle's
saving, deadline misses (shifted minus at once), grid-cap violations (site-hours over),
average completion time (JCT) shifted / at once. 2021 is where the method was tuned;
2022-2023 are held back and reported apart.

The whole run (288 replays, each twice) takes about 30 minutes on 2 shared cores;
`--quick` (NL and FR, January and July 2021, 4,000-job blocks thinned to 1 in 8) about
one. `--zones`, `--months` (indices from January 2021, e.g. `0-11`) and `--caps` narrow
it; `--out` keeps every run as JSON lines.

    .venv/bin/python bench/carbon_robustness.py [--quick] [--procs 2] [--out FILE.jsonl]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from fabriek.scheduler import TraceRow, load_trace, run_simulation
from fabriek.scheduler.carbon import ShiftConfig
from fabriek.scheduler.carbon_series import HourlySeries, load_carbon
from fabriek.scheduler.power import PowerModel
from fabriek.scheduler.sim_energy import EnergySetup

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TRACE = DATA / "traces" / "philly_2017.csv"
CARBON = DATA / "carbon"
ZONES = ("NL", "DE", "FR", "GB")
YEARS = (2021, 2022, 2023)
TUNED_YEARS = (2021,)
GPUS_PER_NODE = 8
DAY_S = 86400.0


@dataclasses.dataclass(frozen=True, slots=True)
class Setting:
    """What every run of one invocation shares."""

    trace: Path
    carbon_dir: Path
    block: int
    thin: int
    load: float
    share: float
    slack_h: float
    spread: tuple[float, float]
    cap_share: float
    max_run_d: float
    seed: int
    shift: ShiftConfig = dataclasses.field(default_factory=ShiftConfig)


@dataclasses.dataclass(frozen=True, slots=True)
class Task:
    """One replay: a zone, a month (index from January 2021), with a cap or not."""

    zone: str
    month: int
    capped: bool


@cache
def _trace(path: Path) -> tuple[TraceRow, ...]:
    return tuple(load_trace(path))


@cache
def _carbon(path: Path) -> tuple[datetime, tuple[float, ...]]:
    dated = load_carbon(path)
    return dated.start, dated.values


def month_start(month: int) -> datetime:
    """The first hour of month `month` (0: January 2021)."""
    return datetime(YEARS[0] + month // 12, month % 12 + 1, 1, tzinfo=UTC)


def sample(setting: Setting, month: int) -> tuple[list[TraceRow], int]:
    """The month's jobs (re-based to time 0, slack and limits drawn) and the nodes that give
    the setting's offered load: a block of `block` consecutive trace jobs, its place in the
    trace drawn by the month, thinned to one in `thin`."""
    rows = _trace(setting.trace)
    first = random.Random(setting.seed * 1000 + month).randrange(0, len(rows) - setting.block)
    block = rows[first : first + setting.block]
    lo = block[0].submit_time_s
    window = max(block[-1].submit_time_s - lo, 3600.0)
    pick = random.Random(setting.seed * 1000 + month + 1)
    slack = random.Random(setting.seed * 1000 + month + 2)
    limits = random.Random(setting.seed * 1000 + month + 3)
    lo_f, hi_f = setting.spread
    out: list[TraceRow] = []
    for r in block:
        if pick.random() >= 1.0 / setting.thin or r.duration_s > setting.max_run_d * DAY_S:
            continue
        flexible = slack.random() < setting.share
        factor = math.exp(limits.uniform(math.log(lo_f), math.log(hi_f)))
        out.append(
            dataclasses.replace(
                r,
                submit_time_s=r.submit_time_s - lo,
                slack_s=setting.slack_h * 3600.0 if flexible else None,
                time_limit_s=max(60.0, r.duration_s * factor),
            )
        )
    offered = sum(r.num_gpus * r.duration_s for r in out) / window
    nodes = max(1, math.ceil(offered / setting.load / GPUS_PER_NODE))
    # The largest job must fit, or it is skipped rather than replayed.
    widest = max((r.num_gpus for r in out), default=1)
    return out, max(nodes, math.ceil(widest / GPUS_PER_NODE))


def replay(setting: Setting, task: Task) -> dict[str, object]:
    """One zone-month: the shifted replay against starting at once, and the oracle."""
    start, values = _carbon(
        setting.carbon_dir / f"electricitymaps_{task.zone}_2021-2023_hourly.csv"
    )
    zero = month_start(task.month)
    series = HourlySeries((start - zero).total_seconds(), values)
    rows, nodes = sample(setting, task.month)
    power = PowerModel()
    cap = None
    if task.capped:
        cap = setting.cap_share * nodes * GPUS_PER_NODE * power.grid_watts("gpu") / 1000.0
    setup = EnergySetup(power=power, carbon=series, grid_cap_kw=cap, shift=setting.shift)
    t0 = time.perf_counter()
    result = run_simulation(rows, nodes, GPUS_PER_NODE, energy=setup)
    took = time.perf_counter() - t0
    e = result.energy
    assert e is not None and e.co2_kg is not None
    assert e.co2_kg_immediate is not None and e.co2_kg_oracle is not None
    saved = e.co2_kg_immediate - e.co2_kg
    best = e.co2_kg_immediate - e.co2_kg_oracle
    return {
        "zone": task.zone,
        "month": zero.strftime("%Y-%m"),
        "capped": task.capped,
        "cap_kw": cap,
        "jobs": result.jobs,
        "gpus": result.gpus,
        "flexible": e.flexible_jobs,
        "co2_kg": e.co2_kg,
        "co2_kg_immediate": e.co2_kg_immediate,
        "co2_kg_oracle": e.co2_kg_oracle,
        "saving": saved / e.co2_kg_immediate if e.co2_kg_immediate > 0 else 0.0,
        "share_of_oracle": saved / best if best > 0 else None,
        "misses": e.deadline_misses,
        "misses_immediate": e.deadline_misses_immediate,
        "violations": e.grid_cap_violations,
        "violations_immediate": e.grid_cap_violations_immediate,
        "jct_ratio": result.summary.avg_jct_s / (e.avg_jct_s_immediate or 1.0),
        "wait_h": result.summary.avg_wait_s / 3600.0,
        "wait_h_immediate": (e.avg_wait_s_immediate or 0.0) / 3600.0,
        "replay_s": took,
    }


def _run(args: tuple[Setting, Task]) -> dict[str, object]:
    return replay(*args)


def tasks(zones: Sequence[str], months: Iterable[int], caps: Sequence[bool]) -> list[Task]:
    """Every zone x month x cap setting, longest first (capped runs take longest)."""
    return [Task(z, m, c) for c in sorted(caps, reverse=True) for m in months for z in zones]


def summarise(runs: Sequence[dict[str, object]]) -> dict[str, float]:
    """Median, mean and worst of each ratio over `runs`."""
    shares = [float(r["share_of_oracle"]) for r in runs if r["share_of_oracle"] is not None]  # type: ignore[arg-type]
    savings = [float(r["saving"]) for r in runs]  # type: ignore[arg-type]
    excess = [int(r["misses"]) - int(r["misses_immediate"]) for r in runs]  # type: ignore[call-overload]
    jct = [float(r["jct_ratio"]) for r in runs]  # type: ignore[arg-type]
    saved = sum(float(r["co2_kg_immediate"]) - float(r["co2_kg"]) for r in runs)  # type: ignore[arg-type]
    best = sum(float(r["co2_kg_immediate"]) - float(r["co2_kg_oracle"]) for r in runs)  # type: ignore[arg-type]
    return {
        "share_pooled": saved / best if best > 0 else math.nan,
        "runs": len(runs),
        "share_median": statistics.median(shares) if shares else math.nan,
        "share_mean": statistics.fmean(shares) if shares else math.nan,
        "share_worst": min(shares, default=math.nan),
        "saving_median": statistics.median(savings) if savings else math.nan,
        "saving_worst": min(savings, default=math.nan),
        "misses": sum(int(r["misses"]) for r in runs),  # type: ignore[call-overload]
        "misses_immediate": sum(int(r["misses_immediate"]) for r in runs),  # type: ignore[call-overload]
        "excess_worst": max(excess, default=0),
        "runs_more_misses": sum(1 for x in excess if x > 0),
        "violations": sum(int(r["violations"]) for r in runs),  # type: ignore[call-overload]
        "jct_median": statistics.median(jct) if jct else math.nan,
        "jct_worst": max(jct, default=math.nan),
    }


def table(runs: Sequence[dict[str, object]]) -> list[str]:
    """The markdown table: one row per cap setting and period, then per zone."""
    lines = [
        "| grid cap | months | runs | share of oracle's saving: median / mean / worst "
        "| pooled (all CO2 saved / all the oracle's) "
        "| CO2 saved: median / worst | deadline misses shifted (at once) "
        "| runs with more misses than at once (most extra) | cap violations "
        "| avg JCT shifted / at once: median / worst |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    groups: list[tuple[str, str, list[dict[str, object]]]] = []
    for capped in (False, True):
        name = "binding" if capped else "none"
        mine = [r for r in runs if r["capped"] is capped]
        if not mine:
            continue
        tuned = [r for r in mine if int(str(r["month"])[:4]) in TUNED_YEARS]
        held = [r for r in mine if int(str(r["month"])[:4]) not in TUNED_YEARS]
        groups += [(name, "2021 (tuned)", tuned), (name, "2022-2023 (held back)", held),
                   (name, "all", mine)]  # fmt: skip
        for zone in ZONES:
            of_zone = [r for r in held if r["zone"] == zone]
            if of_zone:
                groups.append((name, f"held back, {zone}", of_zone))
    for name, label, group in groups:
        if not group:
            continue
        s = summarise(group)
        lines.append(
            f"| {name} | {label} | {s['runs']} | {s['share_median']:.1%} / {s['share_mean']:.1%} "
            f"/ {s['share_worst']:.1%} | {s['share_pooled']:.1%} "
            f"| {s['saving_median']:.2%} / {s['saving_worst']:.2%} "
            f"| {s['misses']} ({s['misses_immediate']}) "
            f"| {s['runs_more_misses']} ({s['excess_worst']:+d}) | {s['violations']} "
            f"| {s['jct_median']:.3f} / {s['jct_worst']:.3f} |"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", type=Path, default=TRACE)
    ap.add_argument("--carbon-dir", type=Path, default=CARBON)
    ap.add_argument("--zones", default=",".join(ZONES))
    ap.add_argument("--months", default="0-35", help="month indices from 2021-01, e.g. 0-11")
    ap.add_argument("--caps", default="none,binding", help="none, binding or both")
    ap.add_argument("--block", type=int, default=6_000, help="consecutive trace jobs per month")
    ap.add_argument("--thin", type=int, default=12, help="keep 1 job in THIN (seeded)")
    ap.add_argument("--load", type=float, default=0.5, help="offered load the cluster is sized for")
    ap.add_argument("--share", type=float, default=0.5, help="share of jobs with slack")
    ap.add_argument("--slack-h", type=float, default=12.0)
    ap.add_argument("--cap-share", type=float, default=0.6,
                    help="grid cap as a share of the cluster's grid power, all GPUs busy")  # fmt: skip
    ap.add_argument("--max-run-d", type=float, default=5.0, help="leave out longer runs")
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--procs", type=int, default=2, help="processes (at most 2 here)")
    ap.add_argument("--quick", action="store_true",
                    help="a tiny sample: NL and FR, January and July 2021, 4,000 jobs thinned to 1 in 8")  # fmt: skip
    ap.add_argument("--out", type=Path, default=None, help="write every run as JSON lines")
    args = ap.parse_args(argv)
    if args.quick:
        args.zones, args.months, args.thin, args.block = "NL,FR", "0,6", 8, 4000
    if not args.trace.exists() or not args.carbon_dir.is_dir():
        print(f"missing {args.trace} or {args.carbon_dir}: the shared data is needed",
              file=sys.stderr)  # fmt: skip
        return 2
    zones = [z.strip() for z in args.zones.split(",") if z.strip()]
    months: list[int] = []
    for part in args.months.split(","):
        a, _, b = part.partition("-")
        months += range(int(a), int(b or a) + 1)
    caps = [c.strip() == "binding" for c in args.caps.split(",")]
    setting = Setting(args.trace, args.carbon_dir, args.block, args.thin, args.load, args.share,
                      args.slack_h, (1.0, 5.0), args.cap_share, args.max_run_d, args.seed)  # fmt: skip
    todo = tasks(zones, months, caps)
    print(
        f"Command: `.venv/bin/python bench/carbon_robustness.py {' '.join(sys.argv[1:])}`".rstrip()
    )
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"{len(todo)} replays, {args.procs} processes", flush=True)
    t0 = time.perf_counter()
    runs: list[dict[str, object]] = []
    work = [(setting, t) for t in todo]
    if args.procs > 1:
        with multiprocessing.get_context("fork").Pool(args.procs) as pool:
            for run in pool.imap_unordered(_run, work):
                runs.append(run)
                _told(run, len(runs), len(work))
    else:
        for item in work:
            runs.append(_run(item))
            _told(runs[-1], len(runs), len(work))
    runs.sort(key=lambda r: (str(r["zone"]), str(r["month"]), bool(r["capped"])))
    if args.out is not None:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in runs))
    print(f"\nwall {time.perf_counter() - t0:,.0f} s\n")
    print("\n".join(table(runs)))
    return 0


def _told(run: dict[str, object], done: int, total: int) -> None:
    share = run["share_of_oracle"]
    print(
        f"[{done}/{total}] {run['zone']} {run['month']} {'cap' if run['capped'] else 'free'} "
        f"jobs {run['jobs']} gpus {run['gpus']} share "
        f"{'-' if share is None else format(share, '.1%')} misses {run['misses']} "
        f"({run['misses_immediate']}) viol {run['violations']} jct {run['jct_ratio']:.3f} "
        f"{run['replay_s']:.1f} s",
        file=sys.stderr,
        flush=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())
