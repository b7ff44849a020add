"""The access pages of those who apply and review: the open calls and the tracks with who
may apply, the proposal form, a proposal's page with its turnaround clock (submit,
withdraw, review or declare a conflict of interest), and the reviewer's queue.

Every rule is the service's (`services.access`): these pages only gather a form's fields
into the service's drafts (`web/access/forms.py`) and show its refusals next to the fields
they concern.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fabriek.api.context import Ctx, Db
from fabriek.domain.access.calls import call_open_problem
from fabriek.domain.access.proposals import (
    CLOCK_RUNNING,
    FINAL_STATES,
    AiRisk,
    Proposal,
    ProposalState,
)
from fabriek.domain.errors import Conflict, FabriekError, InvalidInput
from fabriek.domain.geography import HUBS
from fabriek.domain.gpus import GPU_TYPES
from fabriek.domain.roles import Principal
from fabriek.services import sites
from fabriek.services.access import calls, proposals, reviewing
from fabriek.services.access.desk import applying_projects, runs_proposal
from fabriek.services.paging import PageRequest
from fabriek.web.access.forms import (
    PROPOSAL_FIELDS,
    PROPOSAL_RENAME,
    REVIEW_FIELDS,
    proposal_from_form,
    review_from_form,
)
from fabriek.web.forms import GENERAL, Form, FormProblems, problem_page, status_of
from fabriek.web.i18n import language_of, translate
from fabriek.web.layout import page
from fabriek.web.session import Person, SignedIn

LISTED = PageRequest(limit=500)

router = APIRouter(include_in_schema=False)

# The forms come back to the page they were on after sign-in.
OnApply = Annotated[Principal, Depends(SignedIn("/calls/{ref}/apply"))]
OnProposal = Annotated[Principal, Depends(SignedIn("/proposals/{proposal_id}"))]


def proposal_values(db: Db, ctx: Ctx, who: Principal, proposal: Proposal) -> dict[str, Any]:
    """What a proposal's page and its decision page show beside the proposal."""
    track = ctx.access.tracks.get(proposal.track)
    mine = [r for r in proposal.reviews if r.reviewer == who.username]
    undecided = proposal.state not in FINAL_STATES
    return {
        "p": proposal,
        "track": track,
        "clock": proposal.turnaround,
        "clock_running": proposal.state in CLOCK_RUNNING,
        "runs": runs_proposal(db, who, proposal, ctx.access),
        "pending_reviews": [r for r in mine if r.submitted_at is None],
        "can_submit": proposal.state is ProposalState.DRAFT and who.in_project(proposal.project_id),
        "can_withdraw": undecided
        and (who.leads_project(proposal.project_id) or proposal.author == who.username),
        "gpu_types": GPU_TYPES,
        "now": ctx.clock(),
    }


def _residency_options(db: Db, lang: str) -> list[tuple[str, str]]:
    named = [(s.name, translate(lang, "proposal_form.residency_site", site=s.name))
             for s in sites.list_sites(db, LISTED).items]  # fmt: skip
    return [(code, translate(lang, f"proposal_form.residency_{code}"))
            for code in ("any", "eu", "nl")] + named  # fmt: skip


@router.get("/calls", response_class=HTMLResponse, response_model=None)
def call_list(request: Request, db: Db, ctx: Ctx, who: Person) -> Response:
    """The open calls, each with the signed-in person's projects that may apply, and every
    track with who may apply to it."""
    now = ctx.clock()
    found = calls.list_calls(db, LISTED, ctx.access, now, open_only=True).items
    mine = applying_projects(db, who)
    views = []
    for call in found:
        track = ctx.access.tracks.get(call.track)
        problems = {p.name: p.problem(track) if track else None for p in mine}
        views.append({"call": call, "track": track, "projects": mine, "problems": problems,
                      "eligible": [p for p in mine if problems[p.name] is None]})  # fmt: skip
    return page(request, "calls.html", "calls_page.title", who,
                {"calls": views, "tracks": list(ctx.access.tracks.values()),
                 "has_projects": bool(mine),
                 "hub_names": {h.value: info.name for h, info in HUBS.items()}})  # fmt: skip


def proposal_form_page(
    request: Request, db: Db, ctx: Ctx, who: Principal, ref: str, form: dict[str, str],
    problems: FormProblems, status_code: int = 200,
) -> Response:  # fmt: skip
    now = ctx.clock()
    try:
        call = calls.get_call(db, ref, ctx.access, now)
        closed = call_open_problem(call.code, call.opens_at, call.closes_at, now)
        if closed:
            raise Conflict(closed)
    except FabriekError as bad:
        return problem_page(request, who, bad)
    track = ctx.access.tracks.get(call.track)
    mine = applying_projects(db, who)
    lang = language_of(request)
    options = [
        (p.name, p.name + ("" if track is None or p.problem(track) is None
                           else " " + translate(lang, "proposal_form.not_eligible")))
        for p in mine
    ]  # fmt: skip
    return page(
        request, "proposal_form.html", "proposal_form.title", who,
        {"call": call, "track": track, "form": form, "problems": problems.fields,
         "general": GENERAL, "projects": mine, "project_options": options,
         "residency_options": _residency_options(db, lang),
         "title_params": {"call": call.title}},
        status_code=status_code,
    )  # fmt: skip


@router.get("/calls/{ref}/apply", response_class=HTMLResponse, response_model=None)
def apply_form(request: Request, ref: str, db: Db, ctx: Ctx, who: Person) -> Response:
    """The proposal form for one open call."""
    defaults = {"ai_risk": AiRisk.MINIMAL.value, "residency": "any"}
    return proposal_form_page(request, db, ctx, who, ref, defaults,
                              FormProblems(PROPOSAL_FIELDS))  # fmt: skip


@router.post("/calls/{ref}/apply", response_class=HTMLResponse, response_model=None)
def apply(request: Request, ref: str, db: Db, ctx: Ctx, who: OnApply, form: Form) -> Response:
    """Write the proposal as a draft and, when asked, submit it at once."""
    now, lang, status = ctx.clock(), language_of(request), 422
    draft, problems = proposal_from_form(ref, form, lang)
    if draft is not None:
        try:
            made = proposals.create_proposal(db, who, draft, ctx.access, now)
        except InvalidInput as bad:
            problems.add_all(bad.problems, PROPOSAL_RENAME)
            if not problems:
                problems.add(GENERAL, bad.detail)
        except FabriekError as bad:
            problems.add("project" if status_of(bad) in {403, 404} else GENERAL, bad.detail)
            status = status_of(bad)
        else:
            if form.get("action") == "submit":
                return submit_and_show(request, db, ctx, who, made.id)
            return RedirectResponse(f"/proposals/{made.id}", status_code=303)
    return proposal_form_page(request, db, ctx, who, ref, form, problems, status)


def submit_and_show(
    request: Request, db: Db, ctx: Ctx, who: Principal, proposal_id: int
) -> Response:
    try:
        proposals.submit_proposal(db, who, proposal_id, ctx.access, ctx.clock())
    except FabriekError as bad:
        return proposal_page(request, db, ctx, who, proposal_id, problem=bad)
    return RedirectResponse(f"/proposals/{proposal_id}", status_code=303)


@router.get("/proposals", response_class=HTMLResponse, response_model=None)
def proposal_list(request: Request, db: Db, ctx: Ctx, who: Person) -> Response:
    """The proposals the signed-in person may see, newest first."""
    found = proposals.list_proposals(db, who, LISTED, ctx.access, ctx.clock())
    return page(request, "proposals_list.html", "proposals_page.title", who, {"found": found})


def proposal_page(
    request: Request, db: Db, ctx: Ctx, who: Principal, proposal_id: int,
    problem: FabriekError | None = None, form: dict[str, str] | None = None,
    problems: FormProblems | None = None,
) -> Response:  # fmt: skip
    try:
        found = proposals.get_proposal(db, who, proposal_id, ctx.access, ctx.clock())
    except FabriekError as bad:
        return problem_page(request, who, bad)
    values = proposal_values(db, ctx, who, found)
    shown = problems or FormProblems(REVIEW_FIELDS)
    if problem is not None:
        shown.add(GENERAL, problem.detail)
    status = 200
    if problem is not None:
        status = status_of(problem)
    elif problems:
        status = 422
    return page(request, "proposal_page.html", "proposal_page.title", who,
                {**values, "form": form or {}, "problems": shown.fields, "general": GENERAL,
                 "title_params": {"id": proposal_id}},
                status_code=status)  # fmt: skip


@router.get("/proposals/{proposal_id}", response_class=HTMLResponse, response_model=None)
def proposal_view(request: Request, proposal_id: int, db: Db, ctx: Ctx, who: Person) -> Response:
    """A proposal with its turnaround clock, and what the person may do with it now."""
    return proposal_page(request, db, ctx, who, proposal_id)


@router.post("/proposals/{proposal_id}/submit", response_class=HTMLResponse, response_model=None)
def submit(request: Request, proposal_id: int, db: Db, ctx: Ctx, who: OnProposal) -> Response:
    return submit_and_show(request, db, ctx, who, proposal_id)


@router.post("/proposals/{proposal_id}/withdraw", response_class=HTMLResponse, response_model=None)
def withdraw(
    request: Request, proposal_id: int, db: Db, ctx: Ctx, who: OnProposal, form: Form
) -> Response:
    """Withdraw, once the person has ticked that they mean it."""
    if form.get("confirm") != "yes":
        problems = FormProblems(frozenset({"confirm"}))
        problems.add("confirm", translate(language_of(request), "proposal_page.confirm_missing"))
        return proposal_page(request, db, ctx, who, proposal_id, problems=problems)
    try:
        proposals.withdraw_proposal(db, who, proposal_id, ctx.access, ctx.clock())
    except FabriekError as bad:
        return proposal_page(request, db, ctx, who, proposal_id, problem=bad)
    return RedirectResponse(f"/proposals/{proposal_id}", status_code=303)


@router.post("/proposals/{proposal_id}/review", response_class=HTMLResponse, response_model=None)
def review(
    request: Request, proposal_id: int, db: Db, ctx: Ctx, who: OnProposal, form: Form
) -> Response:
    """The assigned reviewer's review, or their declared conflict of interest."""
    submission, problems = review_from_form(form, language_of(request))
    if submission is not None:
        try:
            reviewing.submit_review(db, who, proposal_id, submission, ctx.clock())
        except InvalidInput as bad:
            problems.add_all(bad.problems, {})
        except FabriekError as bad:
            return proposal_page(request, db, ctx, who, proposal_id, problem=bad, form=form)
        else:
            return RedirectResponse("/reviews", status_code=303)
    return proposal_page(request, db, ctx, who, proposal_id, form=form, problems=problems)


@router.get("/reviews", response_class=HTMLResponse, response_model=None)
def review_queue(request: Request, db: Db, who: Person) -> Response:
    """The reviews the signed-in person is asked for: the waiting ones first."""
    found = reviewing.list_my_reviews(db, who, LISTED).items
    waiting = [r for r in found if r.submitted_at is None]
    done = [r for r in found if r.submitted_at is not None]
    return page(request, "reviews.html", "reviews_page.title", who,
                {"waiting": waiting, "done": done})  # fmt: skip
