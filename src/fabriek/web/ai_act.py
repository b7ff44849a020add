"""The portal's AI Act pages: a person's AI systems (and registering one), and the risk
questionnaire one question at a time: the next question of the rule book's walk with the
article it rests on, the answers so far each with its articles, and at the end the tiers
and the obligations with their dates of application. A refused answer (malformed, not
asked, or contradicting an earlier one) is shown next to the question, in the service's
words, and nothing is recorded.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from fabriek.api.context import Ctx, Db
from fabriek.domain.ai_act.rule_book import AnswerType
from fabriek.domain.ai_act.systems import AiSystemDraft, Classification
from fabriek.domain.errors import FabriekError, Forbidden, InvalidInput, NotFound
from fabriek.domain.roles import Principal
from fabriek.services.access.desk import applying_projects
from fabriek.services.ai_act import systems as ai_systems
from fabriek.services.paging import PageRequest
from fabriek.web.forms import GENERAL, Form, FormLists, FormProblems, problem_page, status_of
from fabriek.web.i18n import language_of, translate
from fabriek.web.layout import page
from fabriek.web.session import Person, SignedIn

SYSTEMS_PER_PAGE = 100
# The registration form's fields, as the form and the draft name them.
REGISTER_FIELDS = frozenset({"project", "name", "intended_purpose", "provider", "role"})
# The "none of these" choice of a many-of question, as the rule book spells it.
NONE = "none"


def _register_problems() -> FormProblems:
    return FormProblems(REGISTER_FIELDS)


def raw_answer(kind: AnswerType, values: list[str]) -> object | None:
    """What the form sent for one question, as the service reads a raw answer; None when
    nothing was chosen (a question needs an answer, even 'none of these')."""
    chosen = [v for v in values if v.strip()]
    if not chosen:
        return None
    if kind is AnswerType.MANY_OF:
        return chosen
    return chosen[0]


router = APIRouter(include_in_schema=False)

# The forms come back to the page they were on after sign-in.
OnSystems = Annotated[Principal, Depends(SignedIn("/ai-systems"))]
OnQuestionnaire = Annotated[Principal, Depends(SignedIn("/ai-systems/{ref}/classify"))]


def list_page(
    request: Request, db: Db, who: Principal, form: dict[str, str],
    problems: FormProblems, status_code: int = 200,
) -> HTMLResponse:  # fmt: skip
    found = ai_systems.list_systems(db, who, PageRequest(limit=SYSTEMS_PER_PAGE))
    mine = applying_projects(db, who)
    return page(request, "ai_systems.html", "ai_systems.title", who,
                {"found": found, "form": form, "problems": problems.fields,
                 "general": GENERAL,
                 "project_options": [(p.name, f"{p.name}: {p.title}") for p in mine]},
                status_code=status_code)  # fmt: skip


@router.get("/ai-systems", response_class=HTMLResponse, response_model=None)
def systems(request: Request, db: Db, who: Person) -> Response:
    """The AI systems of the projects the signed-in person can see, and the form to
    register one."""
    return list_page(request, db, who, {"role": "provider"}, _register_problems())


@router.post("/ai-systems", response_class=HTMLResponse, response_model=None)
def register(request: Request, db: Db, ctx: Ctx, who: OnSystems, form: Form) -> Response:
    """Register a system for one of one's projects; on to its questionnaire."""
    problems = _register_problems()
    status = 422
    try:
        draft = AiSystemDraft(
            project=form.get("project", ""),
            name=form.get("name", "").strip(),
            intended_purpose=form.get("intended_purpose", "").strip(),
            provider=form.get("provider", "").strip(),
            role=form.get("role") or "provider",
            model=None,
        )
        made = ai_systems.register(db, who, ctx.clock(), draft)
        return RedirectResponse(f"/ai-systems/{made.id}/classify", status_code=303)
    except ValidationError as bad:
        problems.add_invalid(bad, {})
    except InvalidInput as bad:
        problems.add_all(bad.problems, {})
        if not problems:
            problems.add(GENERAL, bad.detail)
    except (NotFound, Forbidden) as bad:
        # The project is not one the person may register systems for.
        problems.add("project", bad.detail)
        status = status_of(bad)
    except FabriekError as bad:
        problems.add("name", bad.detail)
        status = status_of(bad)
    return list_page(request, db, who, form, problems, status)


def questionnaire(
    request: Request, who: Principal, current: Classification,
    values: dict[str, list[str]], problems: FormProblems, status_code: int = 200,
) -> HTMLResponse:  # fmt: skip
    return page(request, "ai_classify.html", "ai_classify.title", who,
                {"c": current, "chosen": values, "none_choice": NONE,
                 "problems": problems.fields, "general": GENERAL,
                 "title_params": {"system": current.system}},
                status_code=status_code)  # fmt: skip


@router.get("/ai-systems/{ref}/classify", response_class=HTMLResponse, response_model=None)
def classify(request: Request, ref: str, db: Db, ctx: Ctx, who: Person) -> Response:
    """Where the system's classification stands: the next question, or the result."""
    book = ai_systems.load_rule_book(ctx.settings.ai_act_rules_file)
    try:
        current = ai_systems.classification(db, who, ctx.clock(), book, ref)
    except FabriekError as bad:
        return problem_page(request, who, bad)
    return questionnaire(request, who, current, {}, FormProblems(frozenset()))


@router.post("/ai-systems/{ref}/classify", response_class=HTMLResponse, response_model=None)
def answer(
    request: Request, ref: str, db: Db, ctx: Ctx, who: OnQuestionnaire, form: FormLists
) -> Response:
    """Record the answer to the question the form asked; on to the next one."""
    book = ai_systems.load_rule_book(ctx.settings.ai_act_rules_file)
    now = ctx.clock()
    question = (form.get("question") or [""])[0]
    try:
        current = ai_systems.classification(db, who, now, book, ref)
    except FabriekError as bad:
        return problem_page(request, who, bad)
    problems = FormProblems(frozenset({question}))
    lang = language_of(request)
    if not book.has_question(question):
        problems.add(GENERAL, translate(lang, "ai_classify.unknown_question"))
    else:
        raw = raw_answer(book.question(question).type, form.get(question, []))
        if raw is None:
            problems.add(question, translate(lang, "ai_classify.choose"))
        else:
            try:
                ai_systems.record_answers(db, who, now, book, ref, {question: raw})
                return RedirectResponse(f"/ai-systems/{ref}/classify", status_code=303)
            except InvalidInput as bad:
                problems.add_all(bad.problems, {})
                if not problems:
                    problems.add(GENERAL, bad.detail)
            except FabriekError as bad:
                return problem_page(request, who, bad)
    return questionnaire(request, who, current, form, problems, 422)


@router.post("/ai-systems/{ref}/classify/restart", response_class=HTMLResponse, response_model=None)
def restart(request: Request, ref: str, db: Db, ctx: Ctx, who: OnQuestionnaire) -> Response:
    """Start the questionnaire again (the earlier classification is kept)."""
    book = ai_systems.load_rule_book(ctx.settings.ai_act_rules_file)
    try:
        ai_systems.start_classification(db, who, ctx.clock(), book, ref)
    except FabriekError as bad:
        return problem_page(request, who, bad)
    return RedirectResponse(f"/ai-systems/{ref}/classify", status_code=303)
