"""The access pages of those who decide: the queue of proposals waiting for the access team
(or, on its regional track, the hub), and one proposal's decision page with its three steps
(the administrative check, asking reviewers, the decision). Each step is the service's
(`services.access`); a refusal is shown on the decision page next to the field it
concerns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from fabriek.api.context import Ctx, Db
from fabriek.domain.access.proposals import (
    AdminCheck,
    ProposalState,
    ReviewerAssignment,
    ReviewKind,
)
from fabriek.domain.errors import FabriekError, InvalidInput
from fabriek.domain.roles import Principal
from fabriek.services.access import proposals, reviewing
from fabriek.services.access.desk import may_run_some_call, reviewer_candidates, runs_proposal
from fabriek.web.access.forms import DECIDE_FIELDS, decision_from_form
from fabriek.web.access.proposals import LISTED, proposal_values
from fabriek.web.forms import GENERAL, Form, FormProblems, problem_page, status_of
from fabriek.web.i18n import language_of, translate
from fabriek.web.layout import forbidden, page
from fabriek.web.session import Person, SignedIn

DECIDING = [ProposalState.SUBMITTED, ProposalState.UNDER_REVIEW]

router = APIRouter(include_in_schema=False)

# The decision page's forms come back to it after sign-in.
OnDecision = Annotated[Principal, Depends(SignedIn("/proposals/{proposal_id}/decide"))]


@router.get("/decisions", response_class=HTMLResponse, response_model=None)
def decision_queue(request: Request, db: Db, ctx: Ctx, who: Person) -> Response:
    """The proposals waiting for the access team (or, on its regional track, the hub): the
    administrative check, reviewers, a decision; the oldest clock first."""
    if not may_run_some_call(who):
        return forbidden(request, who, "decisions_page.forbidden")
    found = proposals.list_proposals(db, who, LISTED, ctx.access, ctx.clock(), DECIDING)
    mine = [p for p in found.items if runs_proposal(db, who, p, ctx.access)]
    mine.sort(key=lambda p: (p.turnaround.due_at is None, p.turnaround.due_at, p.id))
    return page(request, "decisions.html", "decisions_page.title", who, {"queue": mine})


def decide_page(
    request: Request, db: Db, ctx: Ctx, who: Principal, proposal_id: int,
    form: dict[str, str] | None = None, problems: FormProblems | None = None,
    problem: FabriekError | None = None,
) -> Response:  # fmt: skip
    try:
        found = proposals.get_proposal(db, who, proposal_id, ctx.access, ctx.clock())
    except FabriekError as bad:
        return problem_page(request, who, bad)
    values = proposal_values(db, ctx, who, found)
    if not values["runs"]:
        return forbidden(request, who, "decisions_page.forbidden_one")
    shown = problems or FormProblems(DECIDE_FIELDS)
    if problem is not None:
        shown.add(GENERAL, problem.detail)
    status = status_of(problem) if problem is not None else 422 if problems else 200
    track = values["track"]
    defaults = {f"award_{gpu}": f"{hours:g}" for gpu, hours in found.requested.items()}
    return page(
        request, "decide.html", "decide.title", who,
        {**values, "form": form or defaults, "problems": shown.fields, "general": GENERAL,
         "technical": reviewer_candidates(db, ReviewKind.TECHNICAL),
         "scientific": reviewer_candidates(db, ReviewKind.SCIENTIFIC),
         "months": list(track.durations_months) if track else [],
         "title_params": {"id": proposal_id}},
        status_code=status,
    )  # fmt: skip


@router.get("/proposals/{proposal_id}/decide", response_class=HTMLResponse, response_model=None)
def decide_view(request: Request, proposal_id: int, db: Db, ctx: Ctx, who: Person) -> Response:
    """The access team's page for one proposal."""
    return decide_page(request, db, ctx, who, proposal_id)


@router.post("/proposals/{proposal_id}/check", response_class=HTMLResponse, response_model=None)
def check(
    request: Request, proposal_id: int, db: Db, ctx: Ctx, who: OnDecision, form: Form
) -> Response:
    """The administrative check: complete and eligible, or not and why."""
    problems = FormProblems(DECIDE_FIELDS)
    passed = form.get("passed", "")
    if passed not in {"yes", "no"}:
        problems.add("passed", translate(language_of(request), "decide.passed_missing"))
        return decide_page(request, db, ctx, who, proposal_id, form, problems)
    done = AdminCheck(passed=passed == "yes", note=form.get("note", "").strip()[:500])
    return act(request, db, ctx, who, proposal_id, form, problems,
               lambda: reviewing.admin_check(db, who, proposal_id, done, ctx.access,
                                             ctx.clock()))  # fmt: skip


@router.post("/proposals/{proposal_id}/reviewers", response_class=HTMLResponse, response_model=None)
def assign(
    request: Request, proposal_id: int, db: Db, ctx: Ctx, who: OnDecision, form: Form
) -> Response:
    """Ask someone for a technical or a scientific review."""
    problems = FormProblems(DECIDE_FIELDS)
    kind = form.get("kind", "")
    if kind not in set(ReviewKind):
        problems.add(GENERAL, translate(language_of(request), "decide.kind_missing"))
        return decide_page(request, db, ctx, who, proposal_id, form, problems)
    field_name = f"reviewer_{kind}"
    try:
        asked = ReviewerAssignment(reviewer=form.get(field_name, ""), kind=ReviewKind(kind))
    except ValidationError as bad:
        problems.add_invalid(bad, {"reviewer": field_name})
        return decide_page(request, db, ctx, who, proposal_id, form, problems)
    return act(request, db, ctx, who, proposal_id, form, problems,
               lambda: reviewing.assign_reviewer(db, who, proposal_id, asked, ctx.access,
                                                 ctx.clock()),
               rename={"reviewer": field_name})  # fmt: skip


@router.post("/proposals/{proposal_id}/decide", response_class=HTMLResponse, response_model=None)
def decide(
    request: Request, proposal_id: int, db: Db, ctx: Ctx, who: OnDecision, form: Form
) -> Response:
    """Award, award in part, or reject, with the reason the applicant reads."""
    draft, problems = decision_from_form(form, language_of(request))
    if draft is None:
        return decide_page(request, db, ctx, who, proposal_id, form, problems)
    decided = draft
    return act(request, db, ctx, who, proposal_id, form, problems,
               lambda: reviewing.decide(db, who, proposal_id, decided, ctx.access,
                                        ctx.clock()),
               done=f"/proposals/{proposal_id}")  # fmt: skip


def act(
    request: Request, db: Db, ctx: Ctx, who: Principal, proposal_id: int,
    form: dict[str, str], problems: FormProblems, step: Callable[[], object],
    rename: dict[str, str] | None = None, done: str | None = None,
) -> Response:  # fmt: skip
    """One step of the access team's: done, on to `done` (the decision page again by
    default); refused, the decision page with the problems next to the fields."""
    try:
        step()
    except InvalidInput as bad:
        problems.add_all(bad.problems, rename or {})
        if not problems:
            problems.add(GENERAL, bad.detail)
        return decide_page(request, db, ctx, who, proposal_id, form, problems)
    except FabriekError as bad:
        return decide_page(request, db, ctx, who, proposal_id, form, problem=bad)
    return RedirectResponse(done or f"/proposals/{proposal_id}/decide", status_code=303)
