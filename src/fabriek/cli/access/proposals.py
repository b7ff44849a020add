"""Access commands: `fabriek tracks`, `fabriek calls`, `fabriek proposals`, `fabriek reviews`
and `fabriek final-report`. Tables for people, `--json` for scripts; GPU-hours say GPU-h."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from fabriek.cli.app import JsonFlag, Limit, app
from fabriek.cli.connection import client
from fabriek.cli.output import console, print_json, print_table
from fabriek.domain.access.calls import CallDraft
from fabriek.domain.access.proposals import (
    DecisionDraft,
    Proposal,
    ProposalDraft,
    Review,
    ReviewSubmission,
)
from fabriek.domain.calendar import AMSTERDAM
from fabriek.sdk.core import validated

# --- helpers --------------------------------------------------------------------------------


def _gpu_h(value: float | None) -> str:
    return "no limit" if value is None else f"{value:,.0f} GPU-h"


def _raw(hours: dict[str, float] | None) -> str:
    """Raw GPU-hours per type: `2,000 h100 GPU-h + 500 a100 GPU-h`."""
    if not hours:
        return "-"
    return " + ".join(f"{h:,.0f} {gpu} GPU-h" for gpu, h in sorted(hours.items()))


def _when(moment: datetime | None) -> str:
    # Deadlines are Dutch working days ending at midnight in Amsterdam: shown there.
    return moment.astimezone(AMSTERDAM).strftime("%Y-%m-%d %H:%M %Z") if moment else "-"


def _hours_option(pairs: list[str] | None, option: str) -> dict[str, float]:
    """`h100=2000` pairs as raw GPU-hours per GPU type."""
    out: dict[str, float] = {}
    for pair in pairs or []:
        gpu, sep, value = pair.partition("=")
        try:
            out[gpu.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not gpu.strip():
            raise typer.BadParameter(f"{option} {pair!r}: use TYPE=HOURS, e.g. h100=2000")
    return out


def _read_text(text: str | None, path: Path | None) -> str | None:
    if path is not None:
        try:
            return path.read_text()
        except OSError as exc:
            raise typer.BadParameter(f"cannot read {path}: {exc.strerror}") from None
    return text


def _clock(p: Proposal) -> str:
    t = p.turnaround
    if t.started_at is None:
        return "not started (a draft)"
    state = "BREACHED" if t.breached else ("stopped" if t.decided_at else "running")
    return (
        f"{t.used_working_days} of {t.promised_working_days} working days used, "
        f"due {_when(t.due_at)} ({state})"
    )


# --- tracks ---------------------------------------------------------------------------------


@app.command()
def tracks(as_json: JsonFlag = False) -> None:
    """The access tracks: who may apply, how much, how fast the decision, for how long."""
    with client() as c:
        found = c.access.tracks()
    if as_json:
        print_json(found)
        return
    rows = [
        (t["code"], t["name"], ", ".join(t["eligible_kinds"]),
         f"{_gpu_h(t['min_gpu_hours'])} - {_gpu_h(t['max_gpu_hours'])}",
         f"{t['decision_working_days']} working days" + (" after cut-off"
                                                         if t["clock_from_cutoff"] else ""),
         "/".join(str(m) for m in t["durations_months"]),
         "yes" if t["peer_review"] else "no", "yes" if t["preemptible"] else "no", t["tier"])
        for t in found["tracks"]
    ]  # fmt: skip
    print_table(None, ["CODE", "NAME", "WHO MAY APPLY", "SIZE (normalised)", "DECISION",
                       "MONTHS", "PEER REVIEW", "PREEMPTIBLE", "TIER"], rows)  # fmt: skip
    factors = ", ".join(f"{g} {f:g}" for g, f in found["gpu_hour_factors"].items())
    console.print(
        f"GPU-hour factors (normalised GPU-h per GPU-hour): {factors}", style="dim", markup=False
    )


# --- calls ----------------------------------------------------------------------------------

calls_app = typer.Typer(help="Calls for proposals; `new` opens one (access team).")
app.add_typer(calls_app, name="calls")


@calls_app.callback(invoke_without_command=True)
def calls(
    ctx: typer.Context,
    as_json: JsonFlag = False,
    open_only: Annotated[bool, typer.Option("--open", help="only calls open now")] = False,
    track: Annotated[str | None, typer.Option("--track", help="one track's calls")] = None,
    limit: Limit = 100,
) -> None:
    """Calls for proposals, the latest opening first."""
    if ctx.invoked_subcommand is not None:
        return
    with client() as c:
        found = c.access.calls(limit=limit, open=True if open_only else None, track=track)
    if as_json:
        print_json(found.items)
        return
    rows = [
        (k.code, k.title, k.track_name, _when(k.opens_at), _when(k.closes_at),
         "open" if k.open else "closed")
        for k in found.items
    ]  # fmt: skip
    print_table(None, ["CODE", "TITLE", "TRACK", "OPENS", "CUT-OFF", ""], rows,
                f"{found.total} call(s)")  # fmt: skip


@calls_app.command("new")
def new_call(
    code: Annotated[str, typer.Argument(help="short unique name, e.g. large-scale-2027-01")],
    track: Annotated[str, typer.Option("--track", help="a track's code (`fabriek tracks`)")],
    title: Annotated[str, typer.Option("--title")],
    opens: Annotated[datetime | None, typer.Option("--opens", help="default: now (UTC)")] = None,
    closes: Annotated[
        datetime | None, typer.Option("--closes", help="the cut-off (UTC); none: stays open")
    ] = None,
    description: Annotated[str, typer.Option("--description")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Open a call on a track (the access team, admins)."""
    start = (opens or datetime.now(UTC)).replace(tzinfo=(opens.tzinfo if opens else None) or UTC)
    body: dict[str, Any] = {"code": code, "title": title, "track": track,
                            "description": description, "opens_at": start.isoformat()}  # fmt: skip
    if closes is not None:
        body["closes_at"] = closes.replace(tzinfo=closes.tzinfo or UTC).isoformat()
    with client() as c:
        call = c.access.create_call(validated(CallDraft, body))
    if as_json:
        print_json(call)
    else:
        print(f"Opened call {call.code} ({call.track_name}), id {call.id}")


# --- proposals ------------------------------------------------------------------------------

proposals_app = typer.Typer(
    help="Proposals: new, show, submit, list; check, assign, decide for the access team."
)
app.add_typer(proposals_app, name="proposals")

StateFilter = Annotated[list[str] | None, typer.Option("--state", help="repeatable")]
CallFilter = Annotated[str | None, typer.Option("--call", help="a call's code")]
ProjectFilter = Annotated[str | None, typer.Option("--project", "-A", help="a project")]


def _list_proposals(
    as_json: bool, state: list[str] | None, call: str | None, project: str | None, limit: int
) -> None:
    with client() as c:
        found = c.access.proposals(limit=limit, states=state, call=call, project=project)
    if as_json:
        print_json(found.items)
        return
    rows = [
        (p.id, p.call, p.project, p.title[:32], p.state.value,
         f"{p.requested_gpu_hours:,.0f} GPU-h",
         f"{p.turnaround.used_working_days}/{p.turnaround.promised_working_days} wd"
         + (" BREACHED" if p.turnaround.breached else ""))
        for p in found.items
    ]  # fmt: skip
    print_table(None, ["#ID", "CALL", "PROJECT", "TITLE", "STATE", "ASKED (normalised)",
                       "CLOCK"], rows, f"{found.total} proposal(s)")  # fmt: skip


@proposals_app.callback(invoke_without_command=True)
def proposals(
    ctx: typer.Context,
    as_json: JsonFlag = False,
    state: StateFilter = None,
    call: CallFilter = None,
    project: ProjectFilter = None,
    limit: Limit = 100,
) -> None:
    """The proposals you may see, newest first."""
    if ctx.invoked_subcommand is None:
        _list_proposals(as_json, state, call, project, limit)


@proposals_app.command("list")
def list_proposals(
    as_json: JsonFlag = False,
    state: StateFilter = None,
    call: CallFilter = None,
    project: ProjectFilter = None,
    limit: Limit = 100,
) -> None:
    """The proposals you may see, newest first (as `fabriek proposals`)."""
    _list_proposals(as_json, state, call, project, limit)


def _shown(p: Proposal, as_json: bool, verb: str | None = None) -> None:
    if as_json:
        print_json(p)
    elif verb:
        console.print(f"Proposal {p.id} {verb}: {p.state.value}. Clock: {_clock(p)}", markup=False)
    else:
        _show(p)


def _show(p: Proposal) -> None:
    lines = [
        ("Proposal", f"{p.id}: {p.title}"),
        ("State", p.state.value),
        ("Call", f"{p.call} (track {p.track})"),
        ("Project", f"{p.project} ({p.organisation})"),
        ("Author", p.author),
        ("Sector", p.sector),
        ("Requested", f"{_raw(p.requested)} = {p.requested_gpu_hours:,.2f} GPU-h normalised"),
        ("Months", str(p.months or "-")),
        ("Datasets", ", ".join(p.datasets) or "-"),
        ("AI Act", str(p.ai_act.get("risk", "-"))),
        ("Residency", p.residency),
        ("Submitted", _when(p.submitted_at)),
        ("Clock", _clock(p)),
        ("Admin check", p.admin_check or "-"),
    ]
    if p.decision:
        lines.append(("Decision", f"{p.decision.value}: {_raw(p.awarded)}"))
        lines.append(("Reason", p.decision_reason or "-"))
    if p.allocation:
        a = p.allocation
        lines.append(
            ("Allocation", f"{a.id}: {a.awarded_gpu_hours:,.2f} GPU-h normalised, "
             f"{_when(a.starts_at)} to {_when(a.ends_at)}; final report due "
             f"{_when(a.final_report_due)}")
        )  # fmt: skip
    for key, value in lines:
        console.print(f"[bold]{key:>12}[/] {escape(str(value))}", soft_wrap=True, highlight=False)
    console.print(
        f"[bold]{'Abstract':>12}[/] {escape(p.abstract)}", soft_wrap=True, highlight=False
    )
    if p.reviews:
        _review_table("Reviews", p.reviews)


@proposals_app.command("new")
def new_proposal(
    call: Annotated[str, typer.Option("--call", help="the call's code")],
    project: Annotated[str, typer.Option("--project", "-A", help="your project")],
    title: Annotated[str, typer.Option("--title")],
    sector: Annotated[str, typer.Option("--sector", help="e.g. health, energy")],
    gpu_hours: Annotated[
        list[str], typer.Option("--gpu-hours", help="TYPE=HOURS raw, repeatable: h100=2000")
    ],
    abstract: Annotated[str | None, typer.Option("--abstract")] = None,
    abstract_file: Annotated[Path | None, typer.Option("--abstract-file")] = None,
    months: Annotated[int | None, typer.Option("--months", min=1, help="allocation length")] = None,
    dataset: Annotated[list[str] | None, typer.Option("--dataset", help="repeatable")] = None,
    ai_risk: Annotated[
        str, typer.Option("--ai-risk", help="AI Act risk: minimal, limited or high")
    ] = "minimal",
    general_purpose: Annotated[
        bool, typer.Option("--general-purpose-model", help="trains a general-purpose AI model")
    ] = False,
    residency: Annotated[
        str, typer.Option("--residency", help="any, eu, nl or a site's name")
    ] = "any",
    submit: Annotated[bool, typer.Option("--submit", help="submit it at once")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Write a draft proposal (and `--submit` it at once)."""
    text = _read_text(abstract, abstract_file)
    if not text:
        raise typer.BadParameter("give --abstract or --abstract-file")
    body = {
        "call": call, "project": project, "title": title, "abstract": text, "sector": sector,
        "requested": _hours_option(gpu_hours, "--gpu-hours"), "months": months,
        "datasets": dataset or [], "residency": residency,
        "ai_act": {"risk": ai_risk, "general_purpose_model": general_purpose},
    }  # fmt: skip
    with client() as c:
        proposal = c.access.create_proposal(validated(ProposalDraft, body))
        if submit:
            proposal = c.access.submit_proposal(proposal.id)
    _shown(proposal, as_json, "written" if not submit else "submitted")


@proposals_app.command("show")
def show_proposal(
    proposal_id: Annotated[int, typer.Argument(help="proposal id")], as_json: JsonFlag = False
) -> None:
    """One proposal in full: its turnaround clock, decision, allocation and reviews."""
    with client() as c:
        _shown(c.access.proposal(proposal_id), as_json)


@proposals_app.command("submit")
def submit_proposal(
    proposal_id: Annotated[int, typer.Argument(help="proposal id")], as_json: JsonFlag = False
) -> None:
    """Submit a draft; the turnaround clock starts."""
    with client() as c:
        _shown(c.access.submit_proposal(proposal_id), as_json, "submitted")


@proposals_app.command("withdraw")
def withdraw_proposal(
    proposal_id: Annotated[int, typer.Argument(help="proposal id")], as_json: JsonFlag = False
) -> None:
    """Withdraw a proposal not yet decided."""
    with client() as c:
        _shown(c.access.withdraw_proposal(proposal_id), as_json, "withdrawn")


@proposals_app.command("check")
def check_proposal(
    proposal_id: Annotated[int, typer.Argument(help="proposal id")],
    passed: Annotated[bool, typer.Option("--pass/--fail", help="the administrative check")],
    note: Annotated[str, typer.Option("--note", help="why it failed (required then)")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Record the administrative check (access team)."""
    with client() as c:
        _shown(c.access.admin_check(proposal_id, passed, note), as_json, "checked")


@proposals_app.command("assign")
def assign_reviewer(
    proposal_id: Annotated[int, typer.Argument(help="proposal id")],
    reviewer: Annotated[str, typer.Argument(help="the reviewer's username")],
    kind: Annotated[str, typer.Option("--kind", help="technical or scientific")] = "scientific",
    as_json: JsonFlag = False,
) -> None:
    """Assign a reviewer (access team): technical to site staff, scientific to reviewers."""
    with client() as c:
        review = c.access.assign_reviewer(proposal_id, reviewer, kind)
    if as_json:
        print_json(review)
    else:
        print(f"Assigned {review.reviewer} a {review.kind.value} review of proposal {proposal_id}")


@proposals_app.command("decide")
def decide_proposal(
    proposal_id: Annotated[int, typer.Argument(help="proposal id")],
    decision: Annotated[str, typer.Option("--decision", help="award, partial or reject")],
    gpu_hours: Annotated[
        list[str] | None,
        typer.Option("--gpu-hours", help="TYPE=HOURS awarded, repeatable; default: as asked"),
    ] = None,
    reason: Annotated[str | None, typer.Option("--reason")] = None,
    months: Annotated[int | None, typer.Option("--months", min=1)] = None,
    as_json: JsonFlag = False,
) -> None:
    """Decide a proposal (access team; the hub for a hub-run track). An award makes the
    allocation."""
    body: dict[str, Any] = {"decision": decision, "reason": reason, "months": months}
    if gpu_hours:
        body["awarded"] = _hours_option(gpu_hours, "--gpu-hours")
    with client() as c:
        p = c.access.decide(
            proposal_id,
            validated(DecisionDraft, {k: v for k, v in body.items() if v is not None}),
        )
    if as_json:
        print_json(p)
        return
    console.print(f"Proposal {p.id}: {p.state.value}", highlight=False, markup=False)
    if p.allocation:
        a = p.allocation
        console.print(
            f"Allocation {a.id}: {a.awarded_gpu_hours:,.2f} GPU-h normalised "
            f"({_raw(a.awarded_raw)}) until {_when(a.ends_at)}",
            highlight=False,
            markup=False,
        )


# --- reviews --------------------------------------------------------------------------------

reviews_app = typer.Typer(help="The reviews you are assigned; `submit` sends yours.")
app.add_typer(reviews_app, name="reviews")


def _review_table(title: str | None, reviews: list[Review]) -> None:
    rows = [
        (r.proposal_id, r.proposal_title[:32], r.kind.value, r.reviewer or "",
         "conflict" if r.conflict else ("in" if r.submitted_at else "pending"),
         r.score if r.score is not None else "",
         "" if r.feasible is None else ("yes" if r.feasible else "no"),
         (r.conflict or r.comment)[:40])
        for r in reviews
    ]  # fmt: skip
    print_table(title, ["PROPOSAL", "TITLE", "KIND", "REVIEWER", "STATE", "SCORE", "FEASIBLE",
                        "COMMENT"], rows)  # fmt: skip


@reviews_app.callback(invoke_without_command=True)
def reviews(
    ctx: typer.Context,
    as_json: JsonFlag = False,
    pending: Annotated[bool, typer.Option("--pending", help="only those not yet in")] = False,
    limit: Limit = 100,
) -> None:
    """The reviews you are assigned, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    with client() as c:
        found = c.access.reviews(limit=limit, pending=pending)
    if as_json:
        print_json(found.items)
        return
    _review_table(None, found.items)
    console.print(f"{found.total} review(s)", style="dim", markup=False)


@reviews_app.command("submit")
def submit_review(
    proposal_id: Annotated[int, typer.Argument(help="proposal id")],
    kind: Annotated[str, typer.Option("--kind", help="technical or scientific")] = "scientific",
    score: Annotated[int | None, typer.Option("--score", min=1, max=5, help="1 to 5")] = None,
    feasible: Annotated[
        bool | None, typer.Option("--feasible/--not-feasible", help="technical reviews")
    ] = None,
    comment: Annotated[str, typer.Option("--comment")] = "",
    conflict: Annotated[
        str | None, typer.Option("--conflict", help="declare a conflict of interest instead")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Submit your review of a proposal, or declare a conflict of interest."""
    body = {"kind": kind, "score": score, "feasible": feasible, "comment": comment,
            "conflict": conflict}  # fmt: skip
    with client() as c:
        review = c.access.submit_review(
            proposal_id,
            validated(ReviewSubmission, {k: v for k, v in body.items() if v is not None}),
        )
    if as_json:
        print_json(review)
    elif review.conflict:
        print(f"Declared a conflict of interest on proposal {proposal_id}: it will not count")
    else:
        print(f"Submitted your {review.kind.value} review of proposal {proposal_id}")


# --- final reports --------------------------------------------------------------------------


@app.command("final-report")
def final_report(
    allocation_id: Annotated[int, typer.Argument(help="the allocation's id")],
    text: Annotated[str | None, typer.Option("--text", help="the report")] = None,
    path: Annotated[Path | None, typer.Option("--file", help="read the report from a file")] = None,
    as_json: JsonFlag = False,
) -> None:
    """File an allocation's final report (the project's PI); due two months after its end."""
    report = _read_text(text, path)
    if not report:
        raise typer.BadParameter("give --text or --file")
    with client() as c:
        allocation = c.access.file_final_report(allocation_id, report)
    if as_json:
        print_json(allocation)
    else:
        print(f"Filed the final report of allocation {allocation.id} ({allocation.project})")
