"""The usage rollup (`fabriek.domain.usage.roll_up`) on a year of hourly energy records.

    .venv/bin/python -m bench.usage_rollup --records 42000 --runs 15 --src BEFORE/src

Makes the same synthetic records as the demo factory's year of use holds (42,000 job-hours
over three sites, every tenth hour without a grid intensity, one site with a declared
residual mix), then times `roll_up` by organisation per month, by project in total and of the
whole factory per hour. Each `--src` is another checkout's `src/` (the "before" rows); every
source runs in a process of its own, in turn, run by run, so that all meet the same moments
of a shared machine. Prints the CPU seconds (steadier than wall time on a shared machine) of
each rollup: the median and the fastest of the runs per source.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fabriek.domain.usage import EnergyHour

ROLLUPS = (("organisation", "month"), ("project", "total"), ("factory", "hour"))

# (name, PUE, WUE L/kWh, heat reuse share, renewable share, residual mix g/kWh)
SITES = (
    ("amsterdam", 1.25, 0.4, 0.3, 0.8, 420.0),
    ("groningen", 1.15, 0.2, 0.5, 0.4, None),
    ("maastricht", 1.35, 0.6, 0.0, 0.0, None),
)


def records(n: int, seed: int = 7) -> list[EnergyHour]:
    """`n` EnergyHour records over a year, as the demo's history spreads them."""
    from fabriek.domain.usage import EnergyHour

    rng = random.Random(seed)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    out: list[EnergyHour] = []
    for i in range(n):
        site, pue, wue, heat, renewable, residual = SITES[i % len(SITES)]
        org = f"org-{rng.randrange(12)}"
        hour = start + timedelta(hours=rng.randrange(8760))
        out.append(
            EnergyHour(
                hour=hour, job_id=i // 10, user=f"user-{rng.randrange(40)}",
                project=f"project-{rng.randrange(30)}", organisation=org, sector="research",
                hub="north", province="groningen", site=site,
                gpu_seconds=rng.uniform(600, 3600) * rng.choice((1, 2, 4, 8)),
                it_kwh=rng.uniform(0.1, 6.0), pue=pue, wue_l_per_kwh=wue,
                heat_reuse_share=heat,
                g_per_kwh=None if hour.hour % 10 == 0 else rng.uniform(80, 450),
                source="modelled-power-model", renewable_share=renewable,
                residual_mix_g_per_kwh=residual,
            )
        )  # fmt: skip
    return out


def child(n: int) -> None:
    """Time one run of each rollup in this process and print the seconds as JSON."""
    from fabriek.domain.usage import GroupBy, Step, roll_up

    recs = records(n)
    roll_up(recs[:100], GroupBy.PROJECT, Step.TOTAL)  # imports and first-call costs
    times = {}
    for by, step in ROLLUPS:
        t0 = time.process_time()
        lines = roll_up(recs, GroupBy(by), Step(step))
        times[f"{by}/{step}"] = (time.process_time() - t0, len(lines))
    print(json.dumps(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=42_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--src", action="append", default=[], help="another checkout's src/")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.records)
        return
    here = str(Path(__file__).resolve().parents[1] / "src")
    sources = [*args.src, here]
    seconds: dict[str, dict[str, list[float]]] = {s: {} for s in sources}
    groups: dict[str, int] = {}
    for _ in range(args.runs):
        for src in sources:
            env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{Path.cwd()}"}
            out = subprocess.run(
                [sys.executable, "-m", "bench.usage_rollup", "--child", "--records",
                 str(args.records)],
                env=env, check=True, capture_output=True, text=True,
            ).stdout  # fmt: skip
            for name, (s, lines) in json.loads(out).items():
                seconds[src].setdefault(name, []).append(s)
                groups[name] = lines
    print(f"{args.records:,} records, {args.runs} runs; seconds per rollup: median (fastest)")
    for src in sources:
        label = "this checkout" if src == here else src
        cells = ", ".join(
            f"{name} [{groups[name]} lines] {statistics.median(s):.3f} ({min(s):.3f})"
            for name, s in seconds[src].items()
        )
        print(f"{label}: {cells}")
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
