"""The portal's access pages: the open calls and the tracks with who may apply, the
proposal form, a proposal's page with its turnaround clock, the reviewer's queue (declare
a conflict of interest or score), and the access team's queue and decision page
(administrative check, reviewers, decision).

Every rule is the service's (`services.proposals`): these pages only gather a form's
fields into the service's drafts and show its refusals next to the fields they concern.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from fabriek.api.context import Ctx, Db
from fabriek.domain.errors import Conflict, FabriekError, InvalidInput
from fabriek.domain.geography import HUBS
from fabriek.domain.gpus import GPU_TYPES
from fabriek.domain.proposals import (
    CLOCK_RUNNING,
    FINAL_STATES,
    AdminCheck,
    AiRisk,
    DecisionDraft,
    DecisionKind,
    Proposal,
    ProposalDraft,
    ProposalState,
    ReviewerAssignment,
    ReviewKind,
    ReviewSubmission,
    call_open_problem,
)
from fabriek.domain.roles import Principal
from fabriek.services import calls, proposals, sites
from fabriek.services.access_desk import (
    applying_projects,
    may_run_some_call,
    reviewer_candidates,
    runs_proposal,
)
from fabriek.services.paging import PageRequest
from fabriek.web.forms import GENERAL, FormProblems, problem_page, status_of
from fabriek.web.i18n import language_of, translate
from fabriek.web.identity import Form
from fabriek.web.layout import forbidden, page, signed_in, to_signin

LISTED = PageRequest(limit=500)

# The proposal form's fields; GPU-hours per type are `gpu_<type>`, shown as one group.
PROPOSAL_FIELDS = frozenset(
    {"project", "title", "abstract", "sector", "requested", "months", "datasets", "ai_risk",
     "gpai", "ai_notes", "residency"}
)  # fmt: skip
# The service's and the draft's names for the proposal form's fields. Eligibility is the
# project's organisation's: said next to the project.
PROPOSAL_RENAME = {"call": "project", "ai_act": "ai_risk", "ai_act.risk": "ai_risk",
                   "ai_act.notes": "ai_notes", "ai_act.general_purpose_model": "gpai"}  # fmt: skip
# The decision page's forms share the page: their fields' names differ.
DECIDE_FIELDS = frozenset(
    {"passed", "note", "reviewer_technical", "reviewer_scientific", "decision", "awarded",
     "months", "reason"}
)  # fmt: skip
REVIEW_FIELDS = frozenset({"coi", "conflict", "score", "feasible", "comment"})
DECIDING = [ProposalState.SUBMITTED, ProposalState.UNDER_REVIEW]


def _hours_of(
    form: dict[str, str], prefix: str, target: str, problems: FormProblems, lang: str
) -> dict[str, float]:
    """GPU-hours per GPU type from the fields `<prefix><type>` (blank and zero left out)."""
    hours: dict[str, float] = {}
    for code in GPU_TYPES:
        text = form.get(prefix + code, "").strip().replace(",", ".")
        if not text:
            continue
        try:
            value = float(text)
        except ValueError:
            problems.add(target, translate(lang, "proposal_form.bad_hours", gpu=code, value=text))
            continue
        if value:
            hours[code] = value
    return hours


def _months(text: str, problems: FormProblems, lang: str) -> int | None:
    if not text.strip():
        return None
    if not text.strip().isdigit():
        problems.add("months", translate(lang, "proposal_form.bad_months", value=text))
        return None
    return int(text)


def proposal_from_form(
    call: str, form: dict[str, str], lang: str
) -> tuple[ProposalDraft | None, FormProblems]:
    """The draft a proposal form asks for, or what is wrong with the form."""
    problems = FormProblems(PROPOSAL_FIELDS)
    requested = _hours_of(form, "gpu_", "requested", problems, lang)
    months = _months(form.get("months", ""), problems, lang)
    if problems:
        return None, problems
    try:
        draft = ProposalDraft.model_validate(
            {
                "call": call,
                "project": form.get("project", ""),
                "title": form.get("title", "").strip(),
                "abstract": form.get("abstract", "").strip(),
                "sector": form.get("sector", "").strip(),
                "requested": requested,
                "months": months,
                "datasets": [d for d in form.get("datasets", "").replace(",", " ").split() if d],
                "ai_act": {
                    "risk": form.get("ai_risk", ""),
                    "general_purpose_model": form.get("gpai") == "yes",
                    "notes": form.get("ai_notes", "").strip(),
                },
                "residency": form.get("residency") or "any",
            }
        )
    except ValidationError as bad:
        problems.add_invalid(bad, PROPOSAL_RENAME)
        return None, problems
    return draft, problems


def review_from_form(
    form: dict[str, str], lang: str
) -> tuple[ReviewSubmission | None, FormProblems]:
    """A review, or a declared conflict of interest, from the review form. The reviewer must
    say one or the other: no score without the declaration that there is no conflict."""
    problems = FormProblems(REVIEW_FIELDS)
    coi, conflict = form.get("coi", ""), form.get("conflict", "").strip()
    if coi not in {"none", "declared"}:
        problems.add("coi", translate(lang, "review_form.coi_missing"))
    elif coi == "declared" and not conflict:
        problems.add("conflict", translate(lang, "review_form.conflict_missing"))
    score = form.get("score", "")
    if coi == "none" and score and not score.isdigit():
        problems.add("score", translate(lang, "review_form.bad_score"))
    if problems:
        return None, problems
    try:
        submission = ReviewSubmission.model_validate(
            {
                "kind": form.get("kind", ""),
                "score": int(score) if coi == "none" and score else None,
                "feasible": {"yes": True, "no": False}.get(form.get("feasible", ""))
                if coi == "none"
                else None,
                "comment": form.get("comment", "").strip(),
                "conflict": conflict if coi == "declared" else None,
            }
        )
    except ValidationError as bad:
        problems.add_invalid(bad, {"kind": GENERAL})
        return None, problems
    return submission, problems


def decision_from_form(
    form: dict[str, str], lang: str
) -> tuple[DecisionDraft | None, FormProblems]:
    """A decision from the decision form: what is awarded counts unless it rejects."""
    problems = FormProblems(DECIDE_FIELDS)
    decision = form.get("decision", "")
    if decision not in set(DecisionKind):
        problems.add("decision", translate(lang, "decide.decision_missing"))
    awarded = _hours_of(form, "award_", "awarded", problems, lang)
    months = _months(form.get("months", ""), problems, lang)
    if problems:
        return None, problems
    try:
        draft = DecisionDraft(
            decision=DecisionKind(decision),
            awarded=None if decision == DecisionKind.REJECT else awarded,
            reason=form.get("reason", "").strip() or None,
            months=months,
        )
    except ValidationError as bad:
        problems.add_invalid(bad, {})
        return None, problems
    return draft, problems


# -- what the pages show -------------------------------------------------------------------------


def _proposal_values(db: Db, ctx: Ctx, who: Principal, proposal: Proposal) -> dict[str, Any]:
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


def access_router() -> APIRouter:
    """The access pages: calls, proposals, reviews and decisions."""
    router = APIRouter(include_in_schema=False)

    @router.get("/calls", response_class=HTMLResponse, response_model=None)
    def call_list(request: Request, db: Db, ctx: Ctx) -> Response:
        """The open calls, each with the signed-in person's projects that may apply, and
        every track with who may apply to it."""
        who = signed_in(request, db, ctx)
        if who is None:
            return to_signin(request)
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
    def apply_form(request: Request, ref: str, db: Db, ctx: Ctx) -> Response:
        """The proposal form for one open call."""
        who = signed_in(request, db, ctx)
        if who is None:
            return to_signin(request)
        defaults = {"ai_risk": AiRisk.MINIMAL.value, "residency": "any"}
        return proposal_form_page(request, db, ctx, who, ref, defaults,
                                  FormProblems(PROPOSAL_FIELDS))  # fmt: skip

    @router.post("/calls/{ref}/apply", response_class=HTMLResponse, response_model=None)
    def apply(request: Request, ref: str, db: Db, ctx: Ctx, form: Form) -> Response:
        """Write the proposal as a draft and, when asked, submit it at once."""
        who = signed_in(request, db, ctx)
        if who is None:
            return to_signin(f"/calls/{ref}/apply")
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
    def proposal_list(request: Request, db: Db, ctx: Ctx) -> Response:
        """The proposals the signed-in person may see, newest first."""
        who = signed_in(request, db, ctx)
        if who is None:
            return to_signin(request)
        found = proposals.list_proposals(db, who, LISTED, ctx.access, ctx.clock())
        return page(request, "proposals_list.html", "proposals_page.title", who,
                    {"found": found})  # fmt: skip

    def proposal_page(
        request: Request, db: Db, ctx: Ctx, who: Principal, proposal_id: int,
        problem: FabriekError | None = None, form: dict[str, str] | None = None,
        problems: FormProblems | None = None,
    ) -> Response:  # fmt: skip
        try:
            found = proposals.get_proposal(db, who, proposal_id, ctx.access, ctx.clock())
        except FabriekError as bad:
            return problem_page(request, who, bad)
        values = _proposal_values(db, ctx, who, found)
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
    def proposal_view(request: Request, proposal_id: int, db: Db, ctx: Ctx) -> Response:
        """A proposal with its turnaround clock, and what the person may do with it now."""
        who = signed_in(request, db, ctx)
        if who is None:
            return to_signin(request)
        return proposal_page(request, db, ctx, who, proposal_id)

    @router.post("/proposals/{proposal_id}/submit", response_class=HTMLResponse,
                 response_model=None)  # fmt: skip
    def submit(request: Request, proposal_id: int, db: Db, ctx: Ctx) -> Response:
        who = signed_in(request, db, ctx)
        if who is None:
            return to_signin(f"/proposals/{proposal_id}")
        return submit_and_show(request, db, ctx, who, proposal_id)

    @router.post("/proposals/{proposal_id}/withdraw", response_class=HTMLResponse,
                 response_model=None)  # fmt: skip
    def withdraw(request: Request, proposal_id: int, db: Db, ctx: Ctx, form: Form) -> Response:
        """Withdraw, once the person has ticked that they mean it."""
        who = signed_in(request, db, ctx)
        if who is None:
            return to_signin(f"/proposals/{proposal_id}")
        if form.get("confirm") != "yes":
            problems = FormProblems(frozenset({"confirm"}))
            problems.add(
                "confirm", translate(language_of(request), "proposal_page.confirm_missing")
            )
            return proposal_page(request, db, ctx, who, proposal_id, problems=problems)
        try:
            proposals.withdraw_proposal(db, who, proposal_id, ctx.access, ctx.clock())
        except FabriekError as bad:
            return proposal_page(request, db, ctx, who, proposal_id, problem=bad)
        return RedirectResponse(f"/proposals/{proposal_id}", status_code=303)

    @router.post("/proposals/{proposal_id}/review", response_class=HTMLResponse,
                 response_model=None)  # fmt: skip
    def review(request: Request, proposal_id: int, db: Db, ctx: Ctx, form: Form) -> Response:
        """The assigned reviewer's review, or their declared conflict of interest."""
        who = signed_in(request, db, ctx)
        if who is None:
            return to_signin(f"/proposals/{proposal_id}")
        submission, problems = review_from_form(form, language_of(request))
        if submission is not None:
            try:
                proposals.submit_review(db, who, proposal_id, submission, ctx.clock())
            except InvalidInput as bad:
                problems.add_all(bad.problems, {})
            except FabriekError as bad:
                return proposal_page(request, db, ctx, who, proposal_id, problem=bad, form=form)
            else:
                return RedirectResponse("/reviews", status_code=303)
        return proposal_page(request, db, ctx, who, proposal_id, form=form, problems=problems)

    @router.get("/reviews", response_class=HTMLResponse, response_model=None)
    def review_queue(request: Request, db: Db, ctx: Ctx) -> Response:
        """The reviews the signed-in person is asked for: the waiting ones first."""
        who = signed_in(request, db, ctx)
        if who is None:
            return to_signin(request)
        found = proposals.list_my_reviews(db, who, LISTED).items
        waiting = [r for r in found if r.submitted_at is None]
        done = [r for r in found if r.submitted_at is not None]
        return page(request, "reviews.html", "reviews_page.title", who,
                    {"waiting": waiting, "done": done})  # fmt: skip

    @router.get("/decisions", response_class=HTMLResponse, response_model=None)
    def decision_queue(request: Request, db: Db, ctx: Ctx) -> Response:
        """The proposals waiting for the access team (or, on its regional track, the hub):
        the administrative check, reviewers, a decision; the oldest clock first."""
        who = signed_in(request, db, ctx)
        if who is None:
            return to_signin(request)
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
        values = _proposal_values(db, ctx, who, found)
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

    @router.get("/proposals/{proposal_id}/decide", response_class=HTMLResponse,
                response_model=None)  # fmt: skip
    def decide_view(request: Request, proposal_id: int, db: Db, ctx: Ctx) -> Response:
        """The access team's page for one proposal."""
        who = signed_in(request, db, ctx)
        if who is None:
            return to_signin(request)
        return decide_page(request, db, ctx, who, proposal_id)

    @router.post("/proposals/{proposal_id}/check", response_class=HTMLResponse,
                 response_model=None)  # fmt: skip
    def check(request: Request, proposal_id: int, db: Db, ctx: Ctx, form: Form) -> Response:
        """The administrative check: complete and eligible, or not and why."""
        who = signed_in(request, db, ctx)
        if who is None:
            return to_signin(f"/proposals/{proposal_id}/decide")
        problems = FormProblems(DECIDE_FIELDS)
        passed = form.get("passed", "")
        if passed not in {"yes", "no"}:
            problems.add("passed", translate(language_of(request), "decide.passed_missing"))
            return decide_page(request, db, ctx, who, proposal_id, form, problems)
        done = AdminCheck(passed=passed == "yes", note=form.get("note", "").strip()[:500])
        return act(request, db, ctx, who, proposal_id, form, problems,
                   lambda: proposals.admin_check(db, who, proposal_id, done, ctx.access,
                                                 ctx.clock()))  # fmt: skip

    @router.post("/proposals/{proposal_id}/reviewers", response_class=HTMLResponse,
                 response_model=None)  # fmt: skip
    def assign(request: Request, proposal_id: int, db: Db, ctx: Ctx, form: Form) -> Response:
        """Ask someone for a technical or a scientific review."""
        who = signed_in(request, db, ctx)
        if who is None:
            return to_signin(f"/proposals/{proposal_id}/decide")
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
                   lambda: proposals.assign_reviewer(db, who, proposal_id, asked, ctx.access,
                                                     ctx.clock()),
                   rename={"reviewer": field_name})  # fmt: skip

    @router.post("/proposals/{proposal_id}/decide", response_class=HTMLResponse,
                 response_model=None)  # fmt: skip
    def decide(request: Request, proposal_id: int, db: Db, ctx: Ctx, form: Form) -> Response:
        """Award, award in part, or reject, with the reason the applicant reads."""
        who = signed_in(request, db, ctx)
        if who is None:
            return to_signin(f"/proposals/{proposal_id}/decide")
        draft, problems = decision_from_form(form, language_of(request))
        if draft is None:
            return decide_page(request, db, ctx, who, proposal_id, form, problems)
        decided = draft
        return act(request, db, ctx, who, proposal_id, form, problems,
                   lambda: proposals.decide(db, who, proposal_id, decided, ctx.access,
                                            ctx.clock()),
                   done=f"/proposals/{proposal_id}")  # fmt: skip

    def act(
        request: Request, db: Db, ctx: Ctx, who: Principal, proposal_id: int,
        form: dict[str, str], problems: FormProblems, step: Any,
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

    return router
