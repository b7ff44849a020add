"""Energy, carbon, heat and grid-cap settings of a replay, and what it metered.

`EnergySetup` is what the caller asks a replay to meter and shift with; `EnergyResult`
is what it measured. The two checks here turn the setup into the scheduler's hourly
`Signals` and refuse a carbon series that does not cover the trace, before any replay
starts, so that a too-short series fails in one line rather than halfway through.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from fabriek.scheduler.carbon import ShiftConfig
from fabriek.scheduler.carbon_series import HourlySeries
from fabriek.scheduler.power import PowerModel
from fabriek.scheduler.signals import HourSignal, Signals
from fabriek.scheduler.sim_cluster import SimCluster
from fabriek.scheduler.trace import TraceRow


@dataclass(frozen=True, slots=True)
class EnergySetup:
    """Energy, carbon and grid for a replay. `carbon` is on the trace's clock (see
    `CarbonSeries.on_clock`); `heat`, on the same clock and hours, is the heat demand
    (0..1) the shift's heat weight counts; `grid_cap_kw` caps every site's IT power x PUE
    in every hour; `shift` None replays without holding flexible jobs back. `compare`
    also replays the same jobs without shifting (for `co2_kg_immediate`). `run_shares`,
    when given, are what the scheduler plans runs with instead of the shares learned from
    ended runs (to compare: `(1.0,)` plans over the whole time limit, `()` over an even
    spread)."""

    power: PowerModel = field(default_factory=PowerModel)
    carbon: HourlySeries | None = None
    heat: HourlySeries | None = None
    grid_cap_kw: float | None = None
    run_shares: Sequence[float] | None = None
    shift: ShiftConfig | None = field(default_factory=ShiftConfig)
    compare: bool = True


@dataclass(frozen=True, slots=True)
class EnergyResult:
    """What a replay with an `EnergySetup` metered. Energy is facility energy (IT x PUE)
    of the jobs' GPUs; carbon is that energy times the hourly intensity (location-based).
    `*_immediate` come from the second replay without shifting (None when not run);
    the oracle starts each job, on its own, at the best time within its slack.
    `heat_weighted_kwh` is the energy times the heat demand of the hours it was used in
    (with a heat series): the energy that came when heat was wanted."""

    energy_kwh: float
    co2_kg: float | None
    co2_kg_immediate: float | None
    co2_kg_oracle: float | None
    flexible_jobs: int
    deadline_misses: int
    deadline_misses_immediate: int | None
    grid_cap_violations: int
    grid_cap_violations_immediate: int | None
    avg_jct_s_immediate: float | None
    avg_wait_s_immediate: float | None
    heat_weighted_kwh: float | None = None
    heat_weighted_kwh_immediate: float | None = None


def check_covered(rows: Sequence[TraceRow], carbon: HourlySeries) -> None:
    """Every submission and latest start must fall inside the carbon series."""
    for row in rows:
        for column, t in (
            ("submit_time_s", row.submit_time_s),
            ("slack_s", row.submit_time_s + (row.slack_s or 0.0)),
        ):
            if not carbon.covers(t, t):
                raise ValueError(
                    f"job {row.job_id}, column {column}: trace time {t:,.0f} s is outside the "
                    f"carbon series ({carbon.start_s:,.0f} s to {carbon.end_s:,.0f} s on the "
                    "trace's clock); give a longer series or another --start"
                )


def site_signals(cluster: SimCluster, energy: EnergySetup) -> Signals:
    """The sites' hourly signals: the carbon series and the grid cap, on every site."""
    names = [s.name for s in cluster.sites()]
    cap = energy.grid_cap_kw
    outside = {n: HourSignal(power_budget_kw=cap) for n in names} if cap is not None else {}
    if energy.carbon is None:
        return Signals(outside=outside, power=energy.power)
    heat = energy.heat
    if heat is not None and (heat.start_s, len(heat.values)) != (
        energy.carbon.start_s,
        len(energy.carbon.values),
    ):
        raise ValueError("the heat-demand series must cover the carbon series' hours")
    demand = heat.values if heat is not None else (None,) * len(energy.carbon.values)
    hours = [
        HourSignal(cap, value, h) for value, h in zip(energy.carbon.values, demand, strict=True)
    ]
    return Signals(
        start_s=energy.carbon.start_s,
        by_site=dict.fromkeys(names, hours),
        outside=outside,
        power=energy.power,
    )
