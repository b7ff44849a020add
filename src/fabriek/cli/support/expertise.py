"""`fabriek experts`: the expertise network's directory, requests for expertise, their
matches (explained), assignments and consultation hours."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from fabriek.cli.app import JsonFlag, Limit, app
from fabriek.cli.connection import client
from fabriek.cli.output import console, print_json, print_table
from fabriek.domain.support.expertise import (
    AssignmentDraft,
    ConsultationDraft,
    ExpertiseRequest,
    ExpertiseRequestDraft,
)
from fabriek.sdk.core import validated

experts_app = typer.Typer(help="Experts of the AI hubs' network, and requests for expertise.")
app.add_typer(experts_app, name="experts")

RequestId = Annotated[int, typer.Argument(help="the expertise request's number")]
SkillOpt = Annotated[
    list[str] | None, typer.Option("--skill", help="a skill code (repeat); see `experts skills`")
]
MonthOpt = Annotated[str | None, typer.Option(help="YYYY-MM; default this month")]


@experts_app.callback(invoke_without_command=True)
def experts(
    ctx: typer.Context,
    skill: Annotated[str | None, typer.Option(help="only experts with this skill")] = None,
    hub: Annotated[str | None, typer.Option(help="only experts of this hub")] = None,
    lang: Annotated[str | None, typer.Option("--lang", help="only experts who speak it")] = None,
    month: MonthOpt = None,
    as_json: JsonFlag = False,
    limit: Limit = 100,
) -> None:
    """The directory of experts, with the hours each has left in the month."""
    if ctx.invoked_subcommand is not None:
        return
    with client() as c:
        found = c.support.experts(limit=limit, skill=skill, hub=hub, language=lang, month=month)
    if as_json:
        print_json(found.items)
        return
    rows = [
        (e.id, e.name, e.organisation, e.hub_name, ", ".join(e.skills), ", ".join(e.languages),
         f"{e.hours_left:g} / {e.hours_per_month:g}")
        for e in found.items
    ]  # fmt: skip
    month_shown = f" in {found.items[0].month:%Y-%m}" if found.items else ""
    print_table(
        "Experts", ["#", "Name", "Organisation", "Hub", "Skills", "Languages",
                    f"Hours left{month_shown}"], rows,
        footer=f"{found.total} in all" if found.total > len(rows) else None,
    )  # fmt: skip


@experts_app.command("skills")
def skills(as_json: JsonFlag = False) -> None:
    """The vocabulary of skills experts claim and requests ask for."""
    with client() as c:
        found = c.support.skills()
    if as_json:
        print_json(found)
        return
    print_table("Skills", ["Code", "English", "Nederlands"], [(s.code, s.en, s.nl) for s in found])


def _about(value: str | None) -> dict[str, int]:
    """`ticket:N` or `proposal:N` as the request's link."""
    if value is None:
        return {}
    kind, _, number = value.partition(":")
    if kind not in {"ticket", "proposal"} or not number.isdigit():
        raise typer.BadParameter(f"{value!r}: write ticket:N or proposal:N", param_hint="--about")
    return {f"{kind}_id": int(number)}


def _print_request(found: ExpertiseRequest, as_json: bool) -> None:
    if as_json:
        print_json(found)
        return
    about = (
        f"ticket {found.ticket_id}" if found.ticket_id else
        f"proposal {found.proposal_id}" if found.proposal_id else "no ticket or proposal"
    )  # fmt: skip
    console.print(
        f"[bold]request {found.id}[/]: {escape(', '.join(found.skills))}, {found.hours:g} h, for "
        f"{escape(found.organisation)} ({escape(found.province)}, hub {escape(found.hub)}, "
        f"sector {escape(found.sector)}); "
        f"{about}"
    )
    if found.description:
        console.print(found.description, style="dim", markup=False)
    if found.assignments:
        rows = [
            (a.expert_id, a.expert, a.hub.value, f"{a.month:%Y-%m}", f"{a.hours_reserved:g}",
             f"{a.hours_delivered:g}")
            for a in found.assignments
        ]  # fmt: skip
        print_table(
            "Assigned", ["#", "Expert", "Hub", "Month", "Hours reserved", "Hours delivered"], rows
        )
    else:
        console.print(f"no expert assigned yet: `fabriek experts match {found.id}`", markup=False)


@experts_app.command("request")
def request(
    skill: SkillOpt = None,
    about: Annotated[str | None, typer.Option(help="ticket:N or proposal:N")] = None,
    hours: Annotated[float, typer.Option(help="hours of expertise needed")] = 2.0,
    lang: Annotated[str | None, typer.Option("--lang", help="preferred language, e.g. nl")] = None,
    organisation: Annotated[
        int | None, typer.Option("--org", help="the requester's organisation id (hub staff)")
    ] = None,
    description: Annotated[str, typer.Option(help="what the help is for")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Ask for expertise, from a ticket or about a proposal."""
    if not skill:
        raise typer.BadParameter("name at least one skill", param_hint="--skill")
    body: dict[str, Any] = {"skills": skill, "hours": hours, "description": description,
                            "language": lang, "organisation_id": organisation, **_about(about)}  # fmt: skip
    with client() as c:
        _print_request(c.support.request_expertise(validated(ExpertiseRequestDraft, body)), as_json)


@experts_app.command("requests")
def requests(
    hub: Annotated[str | None, typer.Option(help="the requester's hub")] = None,
    as_json: JsonFlag = False,
    limit: Limit = 100,
) -> None:
    """The requests for expertise you may see, newest first."""
    with client() as c:
        found = c.support.expertise_requests(limit=limit, hub=hub)
    if as_json:
        print_json(found.items)
        return
    rows = [
        (r.id, ", ".join(r.skills), f"{r.hours:g}", r.organisation, r.hub.value,
         ", ".join(a.expert for a in r.assignments) or "-", f"{r.hours_delivered:g}")
        for r in found.items
    ]  # fmt: skip
    print_table(
        "Expertise requests",
        ["#", "Skills", "Hours asked", "For", "Hub", "Experts", "Hours delivered"], rows,
    )  # fmt: skip


@experts_app.command("show")
def show(request_id: RequestId, as_json: JsonFlag = False) -> None:
    """One request, its experts and the hours they delivered."""
    with client() as c:
        _print_request(c.support.expertise_request(request_id), as_json)


@experts_app.command("match")
def match(request_id: RequestId, month: MonthOpt = None, as_json: JsonFlag = False) -> None:
    """The experts to propose for a request, best first, with why."""
    with client() as c:
        found = c.support.expertise_matches(request_id, month)
    if as_json:
        print_json(found)
        return
    if not found.candidates:
        console.print(
            f"no expert has the skills and the hours for request {request_id}", markup=False
        )
    for m in found.candidates:
        console.print(
            f"[bold]{m.rank}. {escape(m.name)}[/] (expert {m.expert_id}, score {m.score:g})"
        )
        for line in m.why:
            console.print(f"   {line}", markup=False)
    if found.passed_over:
        console.print("passed over:", style="dim")
        for p in found.passed_over:
            console.print(
                f"   {p.name} (expert {p.expert_id}): {p.reason}", style="dim", markup=False
            )


@experts_app.command("assign")
def assign(
    request_id: RequestId,
    expert_id: Annotated[int, typer.Argument(help="the expert's number")],
    hours: Annotated[float | None, typer.Option(help="hours to reserve; default asked")] = None,
    month: MonthOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Assign an expert to a request, within their hours left in the month."""
    body = {"expert_id": expert_id, "hours": hours, "month": month}
    with client() as c:
        _print_request(
            c.support.assign_expert(request_id, validated(AssignmentDraft, body)), as_json
        )


@experts_app.command("log")
def log(
    request_id: RequestId,
    hours: Annotated[float, typer.Option(help="hours delivered")],
    expert: Annotated[
        int | None, typer.Option(help="the expert's number; default the one assigned")
    ] = None,
    day: Annotated[str | None, typer.Option(help="YYYY-MM-DD; default today")] = None,
    note: Annotated[str, typer.Option(help="what was done")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Log the hours an assigned expert delivered on a request."""
    body = {"hours": hours, "expert_id": expert, "day": day, "note": note}
    with client() as c:
        _print_request(
            c.support.log_consultation(request_id, validated(ConsultationDraft, body)), as_json
        )
