"""Time-varying inputs per site and hour: a power budget and cost signals.

A later issue fills these from grid-congestion limits, carbon-intensity series and
heat-demand profiles; until then they are empty and change nothing. The policy already
sees them: a site's power budget caps the GPUs it may run in that hour, and the cost
signal orders otherwise equal placements.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

HOUR_S = 3600.0


@dataclass(frozen=True, slots=True)
class HourSignal:
    """What one site faces in one hour; None where unknown.

    `power_budget_kw` caps the GPUs' power on the site (GPU board power, as data sheets
    give it). `carbon_g_per_kwh` is the grid's carbon intensity; `heat_demand` is the
    heat customers' demand in that hour as a share of its yearly peak (0..1): heat is
    worth more when it is wanted.
    """

    power_budget_kw: float | None = None
    carbon_g_per_kwh: float | None = None
    heat_demand: float | None = None

    def cost(self) -> float:
        """A cost of running one more GPU-hour here now; lower is better, 0 when unknown.

        Carbon counts against, heat demand for: the two pull in opposite directions and
        must be weighed explicitly (a first, plain weighing; the later issue tunes it).
        """
        carbon = self.carbon_g_per_kwh or 0.0
        heat = self.heat_demand or 0.0
        return carbon * (1.0 - 0.5 * heat)


@dataclass(frozen=True, slots=True)
class Signals:
    """Hourly signals per site; hour `i` of a site's series covers
    `[start_s + i * 3600, start_s + (i + 1) * 3600)`. Empty by default."""

    start_s: float = 0.0
    by_site: Mapping[str, Sequence[HourSignal]] = field(default_factory=dict)

    def at(self, site: str, now_s: float) -> HourSignal | None:
        """The signal of `site` in the hour holding `now_s`, or None outside its series."""
        series = self.by_site.get(site)
        if not series:
            return None
        hour = math.floor((now_s - self.start_s) / HOUR_S)
        if 0 <= hour < len(series):
            return series[hour]
        return None
