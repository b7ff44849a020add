"""The access pages' forms read into the service's drafts: a proposal, a review (or a
declared conflict of interest) and a decision. What is wrong with a form is said next to the
field it concerns; every rule beyond the form's own is the service's."""

from __future__ import annotations

from pydantic import ValidationError

from fabriek.domain.access.proposals import (
    DecisionDraft,
    DecisionKind,
    ProposalDraft,
    ReviewSubmission,
)
from fabriek.domain.gpus import GPU_TYPES
from fabriek.web.forms import GENERAL, FormProblems
from fabriek.web.i18n import translate

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
