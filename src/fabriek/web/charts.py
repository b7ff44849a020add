"""Charts as data: a route builds a `Chart`, the `_chart.html` macro draws it as a canvas
(Chart.js, served from /static) with the same numbers in a table under it.

    from fabriek.web.charts import Chart, Series
    c = Chart("power", "operator.power_title", labels=["10:00", "11:00"],
              series=[Series("operator.grid_draw", [812.0, 790.5]),
                      Series("operator.grid_limit", [2500.0, 2500.0], kind="line", dashed=True)],
              unit="unit.kw", axis="operator.hour", digits=1)
    # template: {% from "_chart.html" import chart with context %}{{ chart(c) }}

Titles, series names, the unit and the axis are translation keys; labels are data (names
of provinces, months) and are shown as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from fabriek.web.i18n import translate


@dataclass(frozen=True)
class Series:
    """One row of bars (or a line) of a chart; `values` has one entry per label. `name` is
    a translation key; `unit` (a key too) is shown in the table's heading when the column's
    unit differs from the chart's; `digits` overrides the chart's for this column."""

    name: str
    values: list[float | None]
    kind: Literal["bar", "line"] = "bar"
    dashed: bool = False
    stack: str | None = None
    unit: str | None = None
    digits: int | None = None


@dataclass(frozen=True)
class Chart:
    """A chart and its table. `id` must be unique on the page."""

    id: str
    title: str
    labels: list[str]
    series: list[Series]
    unit: str
    axis: str
    digits: int = 0
    stacked: bool = False
    horizontal: bool = False
    note: str | None = field(default=None)
    # Columns only the table shows (figures in other units, counts), after the series.
    extra: list[Series] = field(default_factory=list)

    def columns(self) -> list[Series]:
        """The table's columns: the drawn series, then the extra ones."""
        return [*self.series, *self.extra]

    def rows(self) -> list[tuple[str, list[float | None]]]:
        """The table: one row per label, one column per series and extra column."""
        columns = self.columns()
        return [(label, [s.values[i] for s in columns]) for i, label in enumerate(self.labels)]


def chart_data(chart: Chart, lang: str) -> dict[str, Any]:
    """What `static/charts.js` draws, in the page's language."""
    return {
        "locale": "nl-NL" if lang == "nl" else "en-GB",
        "labels": chart.labels,
        "unit": translate(lang, chart.unit),
        "stacked": chart.stacked,
        "horizontal": chart.horizontal,
        "series": [
            {
                "label": translate(lang, s.name),
                "values": [None if v is None else round(v, chart.digits) for v in s.values],
                "kind": s.kind,
                "dashed": s.dashed,
                "stack": s.stack,
            }
            for s in chart.series
        ],
    }
