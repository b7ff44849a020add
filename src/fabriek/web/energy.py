"""The energy capability's page in the portal, the operator's (`/operator`): per site, the
draw on the grid connection hour by hour against its limit, PUE, WUE and heat reused, and
the EU data-centre report with its completeness flags. Site operators see the sites they
run; admins see every site."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from fabriek.api.context import Ctx, Db
from fabriek.domain.eed import EedReport
from fabriek.domain.errors import InvalidInput
from fabriek.services.energy import eed_report
from fabriek.services.energy.site_power import SiteLoad, may_operate, site_loads
from fabriek.web.charts import Chart, Series
from fabriek.web.layout import forbidden, page
from fabriek.web.session import Person

# A limit this many times the highest draw is drawn off the chart's scale (the draw would
# be a flat line at the bottom); the page says so and the table keeps it beside each hour.
LIMIT_OFF_SCALE = 3.0


def limit_on_scale(load: SiteLoad) -> bool:
    """Whether the grid-connection limit is drawn as a line on the power chart."""
    limit = load.site.grid_limit_kw
    return bool(limit) and limit is not None and limit <= LIMIT_OFF_SCALE * load.peak_grid_kw


def power_chart(load: SiteLoad) -> Chart:
    """Grid draw per hour, with the connection's limit as a dashed line (or, far above the
    draw, in the table only)."""
    series = [
        Series("operator.grid_draw", list(load.grid_kw)),
        Series("operator.it_power", list(load.it_kw), kind="line"),
    ]
    extra: list[Series] = []
    if load.site.grid_limit_kw:
        limit = Series("operator.grid_limit", [load.site.grid_limit_kw] * len(load.hours),
                       kind="line", dashed=True)  # fmt: skip
        (series if limit_on_scale(load) else extra).append(limit)
    return Chart(
        f"power-{load.site.name}", "operator.power_title",
        [h.strftime("%m-%d %H:00") for h in load.hours], series,
        unit="unit.kw", axis="operator.hour", digits=1, note="operator.power_note", extra=extra,
    )  # fmt: skip


router = APIRouter(include_in_schema=False)


@router.get("/operator", response_class=HTMLResponse, response_model=None)
def operator(request: Request, db: Db, ctx: Ctx, who: Person, year: int | None = None) -> Response:
    """The sites the caller operates: load, efficiency and the EU report."""
    if not may_operate(who):
        return forbidden(request, who, "operator.forbidden")
    now = ctx.clock()
    # The report is filed for the calendar year that ended.
    report_year = year if year is not None and 2020 <= year <= now.year else now.year - 1
    loads = site_loads(db, who, now)
    try:
        figures = eed_report.load_operator_figures()
    except InvalidInput:
        figures = {}
    reports: dict[str, EedReport] = {
        load.site.name: eed_report.build_report(
            db, load.site.name, report_year, figures.get((load.site.name, report_year)), None
        )
        for load in loads
    }
    return page(request, "operator.html", "operator.title", who, {
        "loads": loads, "charts": {load.site.name: power_chart(load) for load in loads},
        "on_scale": {load.site.name: limit_on_scale(load) for load in loads},
        "reports": reports, "report_year": report_year, "now": now,
    })  # fmt: skip
