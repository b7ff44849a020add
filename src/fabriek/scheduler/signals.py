"""Time-varying inputs per site and hour: a power budget and cost signals.

Empty by default, and then they change nothing. A site's power budget is the grid
connection's limit in that hour (Dutch time-block transport agreements): with a
`PowerModel` the scheduler counts each running GPU at its modelled IT power x PUE;
without one at its board power (as before the model existed). A job may start only
where the budget of every hour its time limit covers has room for it beside all jobs
running now, so no hour is ever over budget. The carbon and heat signals order otherwise
equal placements and, through a forecast made from past hours only (`carbon.py`), hold
flexible jobs back for cleaner hours. Heat demand is a calendar profile, known ahead: the
forecast takes the series' own heat demand of the hours to come (up to `HEAT_AHEAD_H`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fabriek.scheduler.carbon import (
    DEFAULT_HEAT_WEIGHT,
    Profile,
    hour_cost,
    persistence,
    seasonal_profile,
)
from fabriek.scheduler.power import PowerModel

HOUR_S = 3600.0
# How far ahead the forecast takes heat demand from the series (a month): a job that may
# wait longer is costed at carbon alone beyond it.
HEAT_AHEAD_H = 31 * 24


@dataclass(frozen=True, slots=True)
class HourSignal:
    """What one site faces in one hour; None where unknown.

    `power_budget_kw` caps the site's power in that hour (see the module).
    `carbon_g_per_kwh` is the grid's carbon intensity; `heat_demand` is the heat
    customers' demand in that hour as a share of its yearly peak (0..1): heat is worth
    more when it is wanted.
    """

    power_budget_kw: float | None = None
    carbon_g_per_kwh: float | None = None
    heat_demand: float | None = None

    def cost(self, heat_weight: float = DEFAULT_HEAT_WEIGHT) -> float:
        """A cost of running one more GPU-hour here now; lower is better, 0 when unknown:
        `carbon x (1 - heat_weight x heat_demand)`. Carbon counts against, heat demand
        for; the operator weighs the two with `heat_weight` (0: carbon only)."""
        return hour_cost(self.carbon_g_per_kwh or 0.0, self.heat_demand, heat_weight)


@dataclass(frozen=True, slots=True)
class Signals:
    """Hourly signals per site; hour `i` of a site's series covers
    `[start_s + i * 3600, start_s + (i + 1) * 3600)`. Empty by default.

    `outside`, per site, holds what applies outside its series (a standing grid cap);
    `power` models what running GPUs draw (None: board power, no PUE)."""

    start_s: float = 0.0
    by_site: Mapping[str, Sequence[HourSignal]] = field(default_factory=dict)
    outside: Mapping[str, HourSignal] = field(default_factory=dict)
    power: PowerModel | None = None
    # Forecasts already made, by (site, hour, heat weight, days): a cache, not state.
    _profiles: dict[tuple[str, int, float, int], Profile | None] = field(
        default_factory=dict, compare=False, repr=False
    )
    _budgeted: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    def hour_of(self, t: float) -> int:
        """The index of the hour holding `t`."""
        return math.floor((t - self.start_s) / HOUR_S)

    def at(self, site: str, now_s: float) -> HourSignal | None:
        """The signal of `site` in the hour holding `now_s`, or None where it has none."""
        series = self.by_site.get(site)
        if series:
            hour = math.floor((now_s - self.start_s) / HOUR_S)
            if 0 <= hour < len(series):
                return series[hour]
        return self.outside.get(site)

    def has_budget(self) -> bool:
        """Whether any site has a power budget in any hour (worked out once)."""
        found = self._budgeted.get("any")
        if found is None:
            found = any(s.power_budget_kw is not None for s in self.outside.values()) or any(
                h.power_budget_kw is not None for series in self.by_site.values() for h in series
            )
            self._budgeted["any"] = found
        return found

    def budget_kw(self, site: str, t0: float, t1: float) -> float:
        """The least power budget of `site` over the hours [t0, t1) touches (inf if none)."""
        first = self.hour_of(t0)
        last = max(first, math.ceil((t1 - self.start_s) / HOUR_S) - 1)
        series = self.by_site.get(site) or ()
        least = math.inf
        fallback = self.outside.get(site)
        spare = fallback.power_budget_kw if fallback is not None else None
        if (first < 0 or last >= len(series)) and spare is not None:
            least = spare
        for hour in range(max(first, 0), min(last, len(series) - 1) + 1):
            b = series[hour].power_budget_kw
            if b is not None and b < least:
                least = b
        return least

    def forecast(self, site: str, now_s: float, heat_weight: float, days: int) -> Profile | None:
        """The forecast of the hourly cost at `site` from the hour holding `now_s`: carbon
        from earlier hours only (`carbon.py`), heat demand as the series has it for the
        hours to come; None without enough carbon history."""
        hour = self.hour_of(now_s)
        key = (site, hour, heat_weight, days)
        if key in self._profiles:
            return self._profiles[key]
        series = self.by_site.get(site)
        found: Profile | None = None
        if series:
            lo = max(0, hour - days * 24)
            window: list[float | None] = [None] * (hour - lo)
            for j in range(lo, min(hour, len(series))):
                window[j - lo] = series[j].carbon_g_per_kwh
            values = seasonal_profile(window, hour - lo, days)
            if values is not None:
                level, decay = persistence(window, values, hour - lo)
                heat: list[float | None] = []
                if heat_weight > 0:
                    ahead = series[max(hour, 0) : max(hour, 0) + HEAT_AHEAD_H]
                    heat = [s.heat_demand for s in ahead]
                found = Profile(values, level, decay, heat, heat_weight)
        if len(self._profiles) > 4096:
            self._profiles.clear()
        self._profiles[key] = found
        return found
