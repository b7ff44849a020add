"""Energy, water, carbon and heat of jobs and sites: pure formulas over typed values.

Every result is a `Figure`: a value with its unit, the *source* of the number (measured by
what, modelled how, or declared by whom) and a one-line *method*, so a report can always
say how a figure came about. Nothing here reads a clock, a file or a device: counter
readings, intervals and factors come in as arguments (docs/energy.md lists every formula).

Conventions:
- energy in kWh (electric) or kWh thermal; counters in the device's own unit (NVML: mJ,
  RAPL: µJ) and converted once, here;
- time as timezone-aware UTC datetimes; an interval is [start, end);
- carbon on *facility* energy (what the site draws from the grid), not IT energy alone.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from fabriek.domain.gpus import GPU_TYPES
from fabriek.domain.units import KgCO2e, KilowattHours, Litres

MJ_PER_KWH = 3.6e9  # millijoules in one kWh (NVML counters)
UJ_PER_KWH = 3.6e12  # microjoules in one kWh (RAPL counters)
SECONDS_PER_HOUR = 3600.0


class Source(StrEnum):
    """Where a figure comes from; the weakest input decides the source of a derived figure."""

    MEASURED_NVML = (
        "measured-nvml"  # GPU total-energy counter (nvmlDeviceGetTotalEnergyConsumption)
    )
    MEASURED_RAPL = "measured-rapl"  # CPU package counter (powercap energy_uj)
    MEASURED_FACILITY = "measured-facility"  # the site's facility meter (E_DC)
    MEASURED_METER = "measured-meter"  # another meter of the site: heat, water, UPS output
    LEDGER = "ledger"  # the metering ledger's sum of per-job figures
    MODELLED_POWER_MODEL = "modelled-power-model"  # idle/full power × utilisation × time
    ESTIMATED_NAMEPLATE = "estimated-nameplate"  # from data-sheet power (TDP) and counts
    DECLARED_PUE = "declared-pue"  # the site's declared PUE
    DECLARED_WUE = "declared-wue"  # the site's declared WUE
    DECLARED_CONTRACT = "declared-contract"  # heat-delivery contract, GoO, PPA
    DECLARED_OPERATOR = "declared-operator"  # a figure the operator states in its annual file
    GRID_INTENSITY = "grid-intensity"  # hourly location-based carbon intensity series
    RESIDUAL_MIX = "residual-mix"  # market-based: residual-mix factor of the uncovered part


class Unit(StrEnum):
    KWH = "kWh"
    KWH_THERMAL = "kWh_th"
    KW = "kW"
    LITRE = "L"
    KG_CO2E = "kg CO2e"
    RATIO = "1"
    CELSIUS = "°C"


@dataclass(frozen=True)
class Figure:
    """A number with its unit, its source and how it was obtained."""

    value: float
    unit: Unit
    source: Source
    method: str

    def scaled(self, factor: float, method: str) -> Figure:
        """The same kind of figure multiplied by a plain factor (a share, a split)."""
        return Figure(self.value * factor, self.unit, self.source, method)


def kwh(value: float, source: Source, method: str) -> Figure:
    """An electric energy figure in kWh."""
    return Figure(value, Unit.KWH, source, method)


def _require_unit(fig: Figure, unit: Unit, what: str) -> None:
    if fig.unit is not unit:
        raise ValueError(f"{what} must be in {unit.value}, not {fig.unit.value}")


# --- Counters: NVML (mJ, monotonic, may reset) and RAPL (µJ, wraps) --------------------------


def counter_delta(previous: int, current: int, wrap_at: int | None = None) -> int:
    """Energy between two readings of a cumulative counter, in the counter's unit; never < 0.

    A counter that goes down either wrapped (RAPL: it counts modulo `wrap_at`, the
    `max_energy_range_uj` of the powercap zone) or was reset (NVML: a driver reload or GPU
    reset starts it from 0 again). For a wrap the energy is the way up to `wrap_at` plus the
    new value; for a reset we count from the new value, the energy known since the reset,
    which undercounts the unobserved part before it rather than inventing any.
    """
    if current >= previous:
        return current - previous
    if wrap_at is not None and 0 <= previous <= wrap_at:
        return wrap_at - previous + current
    return max(current, 0)


def counter_total(readings: Sequence[int], wrap_at: int | None = None) -> int:
    """Energy over a series of readings in time order: the sum of the pairwise deltas."""
    return sum(counter_delta(a, b, wrap_at) for a, b in itertools.pairwise(readings))


@dataclass(frozen=True)
class CounterReading:
    """One reading of one device's cumulative energy counter at one instant."""

    device: str  # NVML GPU UUID or index, or RAPL zone (e.g. "node7/package-0")
    at: datetime
    value: int  # mJ for NVML, µJ for RAPL


def gpu_energy_nvml(readings: Iterable[CounterReading], allocated: Iterable[str]) -> Figure:
    """A job's GPU energy from NVML total-energy readings (mJ) of the GPUs allocated to it.

    Readings of other GPUs on the same node are ignored, so two jobs sharing a node are
    never charged for each other. Each GPU's series is put in time order before differencing.
    """
    mine = set(allocated)
    series: dict[str, list[CounterReading]] = defaultdict(list)
    for r in readings:
        if r.device in mine:
            series[r.device].append(r)
    total_mj = sum(
        counter_total([r.value for r in sorted(rs, key=lambda r: r.at)]) for rs in series.values()
    )
    return kwh(
        total_mj / MJ_PER_KWH,
        Source.MEASURED_NVML,
        f"NVML total-energy counter differences over {len(mine)} allocated GPU(s)",
    )


def cpu_energy_rapl(readings: Iterable[CounterReading], max_energy_range_uj: int) -> Figure:
    """CPU package energy from RAPL readings (µJ), with wrap-around at the zone's range."""
    series: dict[str, list[CounterReading]] = defaultdict(list)
    for r in readings:
        series[r.device].append(r)
    total_uj = sum(
        counter_total([r.value for r in sorted(rs, key=lambda r: r.at)], max_energy_range_uj)
        for rs in series.values()
    )
    return kwh(
        total_uj / UJ_PER_KWH,
        Source.MEASURED_RAPL,
        f"RAPL energy_uj differences over {len(series)} zone(s), wrap at {max_energy_range_uj} µJ",
    )


# --- Power models: where no counter can be read ----------------------------------------------

# The utilisation assumed for a job that reports none. A convention, not a fit: a middle
# value for shared training clusters, whose jobs spend much of their time in input
# pipelines, communication and checkpoints; the same value as the scheduler's power model
# (`scheduler/power.py`), so planning and accounting agree. Every modelled figure states it.
DEFAULT_UTILISATION = 0.5

# Idle power as a fraction of the data-sheet TDP. An assumption (about 10 % for current
# data-centre GPUs), kept per type so that a measured idle power can replace it; docs/energy.md.
IDLE_FRACTION: dict[str, float] = {code: 0.10 for code in GPU_TYPES}
DEFAULT_IDLE_FRACTION = 0.10

# CPU power per core when no RAPL counter can be read: idle and full, in W. An assumption
# from a current 64-core server CPU (about 360 W TDP, so ~5.5 W per core at full load, and
# roughly 100 W idle, ~1.5 W per core).
CPU_IDLE_W_PER_CORE = 1.5
CPU_FULL_W_PER_CORE = 5.5

# Full power planned for a GPU type the reference data does not know: an H100-class board.
# The scheduler must never plan a grid cap as if such a GPU drew nothing.
UNKNOWN_GPU_FULL_W = 700.0


@dataclass(frozen=True)
class PowerModel:
    """Power of one device as a straight line from idle (utilisation 0) to full (1), in W."""

    name: str
    idle_w: float
    full_w: float

    def __post_init__(self) -> None:
        if not 0 <= self.idle_w <= self.full_w:
            raise ValueError(
                f"GPU power needs 0 <= idle <= full watts, got idle {self.idle_w} "
                f"and full {self.full_w}"
            )

    def power_w(self, utilisation: float | None = None) -> float:
        """Power at a utilisation in [0, 1]; the documented default when none is reported."""
        u = DEFAULT_UTILISATION if utilisation is None else min(max(utilisation, 0.0), 1.0)
        return self.idle_w + (self.full_w - self.idle_w) * u


def gpu_power_model(gpu_type: str, unknown_full_w: float | None = None) -> PowerModel:
    """The power model of a GPU type: full power = TDP, idle = IDLE_FRACTION × TDP. A type
    the reference data does not know is an error, unless `unknown_full_w` gives the full
    power to plan it with (the scheduler's `UNKNOWN_GPU_FULL_W`)."""
    code = gpu_type.strip().lower()
    gpu = GPU_TYPES.get(code)
    if gpu is None:
        if unknown_full_w is None:
            raise ValueError(
                f"no power model for GPU type {gpu_type!r}; known: {sorted(GPU_TYPES)}"
            )
        return PowerModel(code, DEFAULT_IDLE_FRACTION * unknown_full_w, unknown_full_w)
    idle = IDLE_FRACTION.get(gpu.code, DEFAULT_IDLE_FRACTION) * gpu.tdp_w
    return PowerModel(gpu.code, idle, float(gpu.tdp_w))


def cpu_power_model(cores: int) -> PowerModel:
    """The power model of `cores` CPU cores (see CPU_IDLE_W_PER_CORE, CPU_FULL_W_PER_CORE)."""
    return PowerModel(
        f"{cores} CPU cores", cores * CPU_IDLE_W_PER_CORE, cores * CPU_FULL_W_PER_CORE
    )


def modelled_energy(
    model: PowerModel, devices: int, seconds: float, utilisation: float | None = None
) -> Figure:
    """Energy of `devices` identical devices over `seconds` at a utilisation, in kWh."""
    if devices < 0 or seconds < 0:
        raise ValueError("devices and seconds must be non-negative")
    watts = model.power_w(utilisation)
    used = "reported" if utilisation is not None else "default"
    u = DEFAULT_UTILISATION if utilisation is None else min(max(utilisation, 0.0), 1.0)
    return kwh(
        devices * watts * seconds / SECONDS_PER_HOUR / 1000.0,
        Source.MODELLED_POWER_MODEL,
        f"{devices} × {model.name} at {watts:.0f} W ({used} utilisation {u:.2f}) × {seconds:.0f} s",
    )


# --- Splitting an interval over clock hours (UTC) --------------------------------------------


def _utc(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return t.astimezone(UTC)


def hour_shares(start: datetime, end: datetime) -> list[tuple[datetime, float]]:
    """The clock hours (UTC) that [start, end) touches, each with the seconds it spends in it."""
    start, end = _utc(start), _utc(end)
    if end <= start:
        return []
    out: list[tuple[datetime, float]] = []
    hour = start.replace(minute=0, second=0, microsecond=0)
    while hour < end:
        nxt = hour + timedelta(hours=1)
        seconds = (min(end, nxt) - max(start, hour)).total_seconds()
        if seconds > 0:
            out.append((hour, seconds))
        hour = nxt
    return out


def split_by_hour(energy: Figure, start: datetime, end: datetime) -> list[tuple[datetime, Figure]]:
    """A figure over [start, end) shared out over the clock hours in proportion to time.

    Proportional to time means constant power within the interval: the best one can do
    with a single figure; with counter readings per hour, difference them per hour instead.
    """
    shares = hour_shares(start, end)
    total = math.fsum(s for _, s in shares)
    if not shares or total <= 0:
        return []
    return [
        (h, energy.scaled(s / total, f"{energy.method}; hour share {s:.0f} s")) for h, s in shares
    ]


# --- From IT energy to the facility: PUE, water, heat ---------------------------------------


def site_pue(
    declared_pue: float | None,
    measured_facility_kwh: float | None = None,
    measured_it_kwh: float | None = None,
) -> Figure:
    """The PUE to apply: measured (facility ÷ IT over the same period) if the site feeds both
    meters, else the site's declared PUE. A PUE below 1 is impossible and is refused."""
    if measured_facility_kwh is not None and measured_it_kwh:
        pue = measured_facility_kwh / measured_it_kwh
        fig = Figure(pue, Unit.RATIO, Source.MEASURED_FACILITY, "facility meter ÷ IT meter")
    elif declared_pue is not None:
        fig = Figure(declared_pue, Unit.RATIO, Source.DECLARED_PUE, "site's declared PUE")
    else:
        raise ValueError("the site has neither a facility meter nor a declared PUE")
    if fig.value < 1.0:
        raise ValueError(f"PUE {fig.value:.3f} < 1: facility energy cannot be below IT energy")
    return fig


# --- The footprint of IT energy: one set of formulas for every figure a user sees -------------
#
# The usage rollups, the operator's site page, the EU report and the `Figure` formulas below
# all compute facility energy, water, heat reused and carbon with these functions, so a
# figure means the same wherever it is shown.


def facility_kwh(it: KilowattHours, pue: float) -> KilowattHours:
    """Facility energy (what the site draws from the grid) = IT energy × PUE."""
    return it * pue


def water_used(it: KilowattHours, wue_l_per_kwh: float) -> Litres:
    """Water = IT energy × WUE (L per kWh of IT energy, the Annex III definition)."""
    return Litres(it.value * wue_l_per_kwh)


def heat_delivered(facility: KilowattHours, heat_reuse_share: float) -> KilowattHours:
    """Heat reused by a site that declares a share: facility energy × that share (all the
    facility's energy ends as heat; the share is what leaves the site to be used)."""
    return facility * heat_reuse_share


def carbon_at(energy: KilowattHours, g_per_kwh: float) -> KgCO2e:
    """kg CO2e of energy at an intensity in g/kWh."""
    return KgCO2e(energy.value * g_per_kwh / 1000.0)


def market_carbon_at(
    energy: KilowattHours,
    share_covered: float,
    residual_mix_g_per_kwh: float | None,
    location_g_per_kwh: float | None,
) -> KgCO2e | None:
    """Market-based kg CO2e: the covered share (clamped to [0, 1]) at 0 g/kWh, the rest at
    the residual mix, or at the location-based intensity where no residual mix is declared;
    None where neither is known."""
    factor = residual_mix_g_per_kwh if residual_mix_g_per_kwh is not None else location_g_per_kwh
    if factor is None:
        return None
    return carbon_at(energy * (1.0 - min(max(share_covered, 0.0), 1.0)), factor)


@dataclass(frozen=True, slots=True)
class SiteFactors:
    """What a site declares that turns IT energy into its footprint, for one hour."""

    pue: float
    wue_l_per_kwh: float = 0.0
    heat_reuse_share: float = 0.0
    renewable_share: float = 0.0
    residual_mix_g_per_kwh: float | None = None


@dataclass(frozen=True, slots=True)
class Footprint:
    """The footprint of some IT energy at one site in one hour. Carbon is None where no
    grid intensity is known: unknown, never zero."""

    it: KilowattHours
    facility: KilowattHours
    water: Litres
    heat_reused: KilowattHours
    carbon: KgCO2e | None
    carbon_market: KgCO2e | None


def footprint(it: KilowattHours, site: SiteFactors, g_per_kwh: float | None = None) -> Footprint:
    """Facility energy, water, heat reused and carbon (location- and market-based) of IT
    energy at a site, with the hour's grid intensity where one is known."""
    facility = facility_kwh(it, site.pue)
    return Footprint(
        it=it,
        facility=facility,
        water=water_used(it, site.wue_l_per_kwh),
        heat_reused=heat_delivered(facility, site.heat_reuse_share),
        carbon=carbon_at(facility, g_per_kwh) if g_per_kwh is not None else None,
        carbon_market=market_carbon_at(
            facility, site.renewable_share, site.residual_mix_g_per_kwh, g_per_kwh
        ),
    )


def facility_energy(it: Figure, pue: Figure) -> Figure:
    """Facility energy = IT energy × PUE; the PUE's source is the figure's source."""
    _require_unit(it, Unit.KWH, "IT energy")
    energy = facility_kwh(KilowattHours(it.value), pue.value)
    return kwh(energy.value, pue.source, f"IT energy ({it.source}) × PUE {pue.value:.3f}")


def water_litres(it: Figure, wue_l_per_kwh: float) -> Figure:
    """Water = IT energy × WUE (L per kWh of IT energy, the Annex III definition)."""
    _require_unit(it, Unit.KWH, "IT energy")
    if wue_l_per_kwh < 0:
        raise ValueError("WUE must be non-negative")
    return Figure(
        water_used(KilowattHours(it.value), wue_l_per_kwh).value,
        Unit.LITRE,
        Source.DECLARED_WUE,
        f"IT energy ({it.source}) × WUE {wue_l_per_kwh:g} L/kWh",
    )
