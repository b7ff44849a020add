"""The hub desk: an AI hub's staff see the organisations and projects of the provinces
their hub serves, what each used this year (GPU-hours, energy, carbon) and the hub's use
per month, and its open support tickets with their service-level state."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from fabriek.api.context import Ctx, Db
from fabriek.domain.errors import FabriekError, InvalidInput
from fabriek.domain.roles import Principal
from fabriek.domain.support.shapes import TicketSummary
from fabriek.domain.usage import UsageLine
from fabriek.services import support
from fabriek.services.paging import Page, PageRequest
from fabriek.services.support.config import SupportOptions
from fabriek.services.support.hub_desk import HubDesk, desk_hubs, hub_desk
from fabriek.web.charts import Chart, Series
from fabriek.web.forms import problem_page
from fabriek.web.layout import forbidden, page
from fabriek.web.session import Person

# The open tickets the desk lists: the newest; the full queue is in `fabriek support list`.
TICKETS_SHOWN = 50


def month_chart(desk: HubDesk) -> Chart:
    """The hub's GPU-hours per month of the year, with energy and carbon in the table;
    months without use are shown as zero, so the year reads whole."""
    by_month: dict[str, UsageLine] = {line.period: line for line in desk.months}
    labels = [f"{desk.year}-{m:02d}" for m in range(1, 13)]

    def figure(name: str) -> list[float | None]:
        return [float(getattr(by_month[m], name)) if m in by_month else 0.0 for m in labels]

    return Chart(
        "hub-months", "hub_desk.months_title", labels,
        [Series("figure.gpu_hours", figure("gpu_hours"))],
        unit="unit.gpu_hours", axis="hub_desk.month", digits=1,
        extra=[Series("figure.energy", figure("kwh_facility"), unit="unit.kwh"),
               Series("figure.carbon", figure("kg_co2e"), unit="unit.kg_co2e")],
    )  # fmt: skip


def open_tickets(db: Db, who: Principal, ctx: Ctx, hub: str) -> Page[TicketSummary]:
    """The hub's open support tickets with their service-level state, newest first."""
    config = SupportOptions.from_settings(ctx.settings).config
    return support.list_tickets(
        db, who, config, ctx.clock(), PageRequest(limit=TICKETS_SHOWN), ["open"], hub
    )


router = APIRouter(include_in_schema=False)


@router.get("/hub", response_class=HTMLResponse, response_model=None)
def desk(
    request: Request, db: Db, ctx: Ctx, who: Person, hub: str | None = None,
    year: str | None = None,
) -> Response:  # fmt: skip
    """One hub's organisations, projects and their use in a year (admins choose any hub)."""
    if not desk_hubs(who):
        return forbidden(request, who, "hub_desk.forbidden")
    try:
        if year and not year.strip().isdigit():
            raise InvalidInput.on("year", f"{year!r} is not a year like 2026")
        found = hub_desk(db, who, hub or None, int(year) if year else None, ctx.clock())
    except FabriekError as bad:
        return problem_page(request, who, bad)
    return page(request, "hub_desk.html", "hub_desk.title", who,
                {"desk": found, "chart": month_chart(found),
                 "tickets": open_tickets(db, who, ctx, found.hub.hub.value),
                 "title_params": {"hub": found.hub.name}})  # fmt: skip
