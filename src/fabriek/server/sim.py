"""`fabriek sim`: replay a job trace through the production scheduler on a simulated clock.

A local command like `serve`: it needs no server, only the pure scheduler. With
`--carbon` (and `--start`, where the trace's time zero falls) it also meters energy and
carbon, shifts jobs with a `slack_s` toward cleaner hours, and compares with the same
replay without shifting and with the perfect-foresight optimum; `--heat` adds a heat-
demand profile (weighed by `--heat-weight`); `--grid-cap-kw` caps every site's grid power.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated

import rich.progress
import typer
from rich.console import Console

from fabriek.cli.output import print_json, print_table
from fabriek.domain.energy import PowerModel as GpuPower
from fabriek.domain.errors import InvalidInput
from fabriek.scheduler import Policy, TraceError, load_trace, run_simulation
from fabriek.scheduler.carbon import DEFAULT_HEAT_WEIGHT, DEFAULT_MARGIN, ShiftConfig
from fabriek.scheduler.carbon_series import CarbonError, HourlySeries, load_carbon, parse_utc
from fabriek.scheduler.power import DEFAULT_PUE, DEFAULT_UTILISATION, PowerModel
from fabriek.scheduler.sim_energy import EnergySetup
from fabriek.scheduler.sim_replay import Progress
from fabriek.services.energy.heat import read_heat_profile

# The command's options, one alias each (as the CLI's other commands declare theirs).
TraceOption = Annotated[
    Path,
    typer.Option(
        "--trace",
        help="CSV: job_id,submit_time_s,duration_s,num_gpus[,tenant,time_limit_s,gpu_type]",
    ),
]
NodesOption = Annotated[int, typer.Option("--nodes", min=1, help="nodes in the cluster")]
GpusPerNodeOption = Annotated[int, typer.Option("--gpus-per-node", min=1)]
SitesOption = Annotated[int, typer.Option("--sites", min=1, help="split the nodes over K sites")]
PolicyOption = Annotated[
    Policy, typer.Option("--policy", help="fifo, backfill, sjf-aged or fabriek")
]
OverestimateOption = Annotated[
    float,
    typer.Option("--overestimate", help="time limit = duration × this, where the trace has none"),
]
CarbonOption = Annotated[
    Path | None,
    typer.Option("--carbon", help="CSV: datetime_utc,carbon_intensity_gco2eq_per_kwh"),
]
StartOption = Annotated[
    str | None,
    typer.Option("--start", help="ISO date (UTC) where the trace's time 0 falls"),
]
GridCapKwOption = Annotated[
    float | None, typer.Option("--grid-cap-kw", help="each site's grid limit, kW")
]
PueOption = Annotated[float, typer.Option("--pue", help="facility / IT energy")]
UtilisationOption = Annotated[
    float, typer.Option("--utilisation", help="power = idle + this x (full - idle)")
]
GpuPowerOption = Annotated[
    list[str] | None,
    typer.Option("--gpu-power", help="TYPE=IDLE:FULL watts, e.g. h100=70:700 (repeat)"),
]
ShiftOption = Annotated[
    bool, typer.Option("--shift/--no-shift", help="hold jobs with slack for cleaner hours")
]
MarginOption = Annotated[
    float, typer.Option("--shift-margin", help="a later hour must be this much cleaner")
]
HeatWeightOption = Annotated[
    float, typer.Option("--heat-weight", help="cost = carbon x (1 - this x heat demand)")
]
HeatOption = Annotated[
    Path | None,
    typer.Option("--heat", help="ETM hourly heat profile CSV (hour_of_year, share columns)"),
]
HeatColumnOption = Annotated[
    str | None, typer.Option("--heat-column", help="its share column (default: households')")
]
AsJsonOption = Annotated[bool, typer.Option("--json", help="print JSON")]


def sim(
    trace: TraceOption,
    nodes: NodesOption,
    gpus_per_node: GpusPerNodeOption,
    sites: SitesOption = 1,
    policy: PolicyOption = Policy.FABRIEK,
    overestimate: OverestimateOption = 2.0,
    carbon: CarbonOption = None,
    start: StartOption = None,
    grid_cap_kw: GridCapKwOption = None,
    pue: PueOption = DEFAULT_PUE,
    utilisation: UtilisationOption = DEFAULT_UTILISATION,
    gpu_power: GpuPowerOption = None,
    shift: ShiftOption = True,
    margin: MarginOption = DEFAULT_MARGIN,
    heat_weight: HeatWeightOption = DEFAULT_HEAT_WEIGHT,
    heat: HeatOption = None,
    heat_column: HeatColumnOption = None,
    as_json: AsJsonOption = False,
) -> None:
    """Replay a trace with the scheduler production runs; print the quality metrics."""
    try:
        rows = load_trace(trace)
        energy = _energy(carbon, start, grid_cap_kw, pue, utilisation, gpu_power or [],
                         ShiftConfig(margin, heat_weight) if shift else None,
                         heat, heat_column)  # fmt: skip
        # A bar where a person watches (a large trace takes minutes), never in a pipe or JSON.
        with progress_bar(not as_json and sys.stderr.isatty()) as progress:
            result = run_simulation(rows, nodes, gpus_per_node, sites, policy, overestimate,
                                    energy=energy, progress=progress)  # fmt: skip
    except (TraceError, CarbonError, ValueError, InvalidInput) as exc:
        print(f"fabriek: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    summary = result.to_dict()
    if as_json:
        print_json(summary)
        return
    shown = [(k, f"{v:,.3f}" if isinstance(v, float) else v) for k, v in summary.items()
             if not isinstance(v, list | dict)]  # fmt: skip
    print_table(f"{policy.value} on {nodes} × {gpus_per_node} GPUs", ["metric", "value"], shown)
    skipped = summary.get("skipped_jobs")
    if isinstance(skipped, list) and skipped:
        print(
            f"{len(skipped)} job(s) skipped: they need more GPUs than the cluster has",
            file=sys.stderr,
        )


@contextmanager
def progress_bar(shown: bool) -> Iterator[Progress | None]:
    """A Rich progress bar on standard error, one line per replay, gone when done; None
    (no reports at all) when not `shown`."""
    if not shown:
        yield None
        return
    bar = rich.progress.Progress(
        rich.progress.TextColumn("{task.description}"),
        rich.progress.BarColumn(),
        rich.progress.MofNCompleteColumn(),
        rich.progress.TextColumn("jobs submitted"),
        rich.progress.TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    tasks: dict[str, rich.progress.TaskID] = {}

    def told(replay: str, submitted: int, total: int) -> None:
        if replay not in tasks:
            tasks[replay] = bar.add_task(replay.capitalize(), total=total)
        bar.update(tasks[replay], completed=submitted)

    with bar:
        yield told


def _energy(
    carbon: Path | None,
    start: str | None,
    grid_cap_kw: float | None,
    pue: float,
    utilisation: float,
    gpu_power: list[str],
    shift: ShiftConfig | None,
    heat: Path | None = None,
    heat_column: str | None = None,
) -> EnergySetup | None:
    """The energy setup the options ask for; None without --carbon and --grid-cap-kw. A
    heat profile is put on the carbon series' hours (same date and hour of day)."""
    if start is not None and carbon is None:
        raise ValueError("--start places the trace on the carbon series: give --carbon too")
    if heat is not None and carbon is None:
        raise ValueError("--heat weighs carbon: give --carbon and --start too")
    if carbon is None and grid_cap_kw is None:
        return None
    gpus: dict[str, GpuPower] = {}
    for spec in gpu_power:
        code, _, watts = spec.partition("=")
        idle, _, full = watts.partition(":")
        try:
            gpus[code.strip().lower()] = GpuPower(code.strip().lower(), float(idle), float(full))
        except ValueError:
            raise ValueError(
                f"--gpu-power: {spec!r} is not TYPE=IDLE:FULL watts with 0 <= IDLE <= FULL"
            ) from None
    power = PowerModel(gpus, utilisation, pue)
    series = demand = None
    if carbon is not None:
        if start is None:
            raise ValueError("--carbon needs --start: the ISO date where the trace's time 0 falls")
        try:
            zero: datetime = parse_utc(start)
        except ValueError:
            raise ValueError(f"--start: {start!r} is not an ISO date (e.g. 2023-01-01)") from None
        dated = load_carbon(carbon)
        series = dated.on_clock(zero)
        if heat is not None:
            profile = read_heat_profile(heat, heat_column)
            demand = HourlySeries(series.start_s, profile.series(dated.start, len(dated.values)))
    return EnergySetup(
        power=power, carbon=series, heat=demand, grid_cap_kw=grid_cap_kw, shift=shift
    )
