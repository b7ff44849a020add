"""The public dashboard, the portal's front page: the factory's sites, and its use by
province, AI hub, sector and month, for anyone, without sign-in. Small groups are merged
before anything is shown (`services.public_dashboard`)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from fabriek.api.context import Ctx, Db
from fabriek.domain.disclosure import MINIMUM_ORGANISATIONS, Published
from fabriek.domain.geography import HUBS, Hub
from fabriek.services.overview import factory_overview
from fabriek.services.public_dashboard import Dashboard, last_twelve_months, public_dashboard
from fabriek.web.charts import Chart, Series
from fabriek.web.i18n import language_of, translate
from fabriek.web.layout import page, signed_in
from fabriek.web.state import CachedDashboard, Kept, PortalState

# A year of hourly records is summed again at most this often per period: the figures
# change when runs end, and a busy front page should not cost a rollup per visit.
CACHE_S = 60.0


def _name(key: str, lang: str) -> str:
    """How a group's key is shown: hubs by name, sectors translated, others as they are."""
    if key in {h.value for h in Hub}:
        return HUBS[Hub(key)].name
    sector = f"sector.{key}"
    try:
        return translate(lang, sector)
    except KeyError:
        return key


def _label(p: Published, lang: str) -> str:
    names = " + ".join(_name(k, lang) for k in p.keys)
    return f"{names} ({translate(lang, 'dashboard.merged')})" if p.merged else names


def group_chart(chart_id: str, title: str, axis: str, groups: list[Published], lang: str) -> Chart:
    """GPU-hours of each published group as bars; its table has every figure."""
    return Chart(
        chart_id, title, [_label(g, lang) for g in groups],
        [Series("figure.gpu_hours", [g.totals.gpu_hours for g in groups])],
        unit="unit.gpu_hours", axis=axis, horizontal=True,
        extra=[
            Series("figure.organisations", [float(g.organisations) for g in groups],
                   unit="unit.count"),
            Series("figure.energy", [g.totals.kwh for g in groups], unit="unit.kwh"),
            Series("figure.carbon", [g.totals.kg_co2e for g in groups], unit="unit.kg_co2e"),
            Series("figure.water", [g.totals.litres_water for g in groups], unit="unit.litres"),
            Series("figure.heat", [g.totals.kwh_heat_reused for g in groups], unit="unit.kwh"),
        ],
    )  # fmt: skip


def month_charts(d: Dashboard, lang: str) -> list[Chart]:
    """GPU-hours per month, and energy with heat reused per month (table: every figure)."""
    labels, rows = [], []
    published = {p.keys[0]: p for p in d.by_month}
    hidden = {k for p in d.by_month for k in p.keys[1:]}
    for month in d.months:
        if month in hidden:
            continue
        p = published.get(month)
        labels.append(_label(p, lang) if p is not None else month)
        rows.append(p.totals if p is not None else None)

    def values(pick: str) -> list[float | None]:
        return [getattr(r, pick) if r is not None else 0.0 for r in rows]

    gpu = Chart("per-month-gpu", "dashboard.per_month_gpu", labels,
                [Series("figure.gpu_hours", values("gpu_hours"))],
                unit="unit.gpu_hours", axis="dashboard.month")  # fmt: skip
    energy = Chart(
        "per-month-energy", "dashboard.per_month_energy", labels,
        [Series("figure.energy", values("kwh")), Series("figure.heat", values("kwh_heat_reused"))],
        unit="unit.kwh", axis="dashboard.month",
        extra=[Series("figure.carbon", values("kg_co2e"), unit="unit.kg_co2e"),
               Series("figure.water", values("litres_water"), unit="unit.litres")],
    )  # fmt: skip
    return [gpu, energy]


router = APIRouter(include_in_schema=False)


def figures(db: Db, portal: PortalState, key: str, start: datetime, end: datetime) -> Dashboard:
    """The dashboard of a period, summed again once it is older than `CACHE_S`."""
    with portal.lock:
        kept = portal.dashboards.get(key)
    if kept is not None and time.monotonic() - kept.at < CACHE_S:
        return kept.dashboard
    made = public_dashboard(db, start, end)
    with portal.lock:
        portal.dashboards[key] = CachedDashboard(time.monotonic(), made)
    return made


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, db: Db, ctx: Ctx, portal: Kept, year: str = "") -> HTMLResponse:
    """The factory at a glance, for everyone."""
    now = ctx.clock().astimezone(UTC)
    years = [str(now.year - i) for i in range(3)]
    if year in years:
        start = datetime(int(year), 1, 1, tzinfo=UTC)
        end = min(datetime(int(year) + 1, 1, 1, tzinfo=UTC), now)
    else:
        year = ""
        start, end = last_twelve_months(now)
    d = figures(db, portal, year or "last-12", start, end)
    lang = language_of(request)
    charts = {
        "months": month_charts(d, lang),
        "province": group_chart("by-province", "dashboard.by_province",
                                "dashboard.province", d.by_province, lang),
        "hub": group_chart("by-hub", "dashboard.by_hub", "dashboard.hub", d.by_hub, lang),
        "sector": group_chart("by-sector", "dashboard.by_sector", "dashboard.sector",
                              d.by_sector, lang),
    }  # fmt: skip
    return page(request, "dashboard.html", "dashboard.title", signed_in(request, db, ctx), {
        "d": d, "charts": charts, "overview": factory_overview(db), "years": years,
        "year": year, "minimum": MINIMUM_ORGANISATIONS,
    })  # fmt: skip
