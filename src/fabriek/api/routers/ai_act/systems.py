"""AI systems and their EU AI Act risk classification: register a system, walk the
questionnaire answer by answer, read the result. Systems of projects the caller cannot see
answer 404; members of the project and admins may change them, others who see them 403."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from fabriek.api.context import Caller, Ctx, Db
from fabriek.api.routers import API_PREFIX
from fabriek.api.schemas import PageOut, paging
from fabriek.domain.ai_act.rule_book import RuleBook
from fabriek.domain.ai_act.systems import (
    AiSystem,
    AiSystemDraft,
    AnswersIn,
    Classification,
    ClassificationSummary,
    ResultOut,
)
from fabriek.services.ai_act import systems
from fabriek.services.paging import PageRequest

router = APIRouter(prefix=f"{API_PREFIX}", tags=["ai-systems"])

SystemRef = Annotated[str, "an AI system's id or name"]


def _book(ctx: Ctx) -> RuleBook:
    return systems.load_rule_book(ctx.settings.ai_act_rules_file)


Book = Annotated[RuleBook, Depends(_book)]


@router.get("/ai-act/questionnaire", response_model=RuleBook, response_model_by_alias=True)
def questionnaire(_who: Caller, book: Book) -> RuleBook:
    """The risk-classification rule book in force: its version, questions, tiers,
    obligations with their dates, rules and contradictions, each citing the Act."""
    return book


@router.get("/ai-systems", response_model=PageOut[AiSystem])
def list_systems(
    db: Db,
    who: Caller,
    page: Annotated[PageRequest, Depends(paging)],
    project: Annotated[str | None, Query(description="project name or id")] = None,
    name: Annotated[str | None, Query(max_length=63, description="part of the name")] = None,
) -> PageOut[AiSystem]:
    """The AI systems of the projects the caller may see, newest first, each with its
    latest classification's tiers."""
    return PageOut.of(systems.list_systems(db, who, page, project, name))


@router.post("/ai-systems", response_model=AiSystem, status_code=status.HTTP_201_CREATED)
def register(body: AiSystemDraft, db: Db, who: Caller, ctx: Ctx) -> AiSystem:
    """Register an AI system for a project (its members, admins)."""
    return systems.register(db, who, ctx.clock(), body)


@router.get("/ai-systems/{ref}", response_model=AiSystem)
def get_system(ref: SystemRef, db: Db, who: Caller) -> AiSystem:
    return systems.get_system(db, who, ref)


@router.get("/ai-systems/{ref}/classification", response_model=Classification)
def classification(ref: SystemRef, db: Db, who: Caller, ctx: Ctx, book: Book) -> Classification:
    """The current classification: the answers so far, each with the articles it rests on,
    and the next question, or the result."""
    return systems.classification(db, who, ctx.clock(), book, ref)


@router.post("/ai-systems/{ref}/classification/answers", response_model=Classification)
def answer(
    ref: SystemRef, body: AnswersIn, db: Db, who: Caller, ctx: Ctx, book: Book
) -> Classification:
    """Record one or more answers (members, admins) and walk on; the first answer starts a
    classification. An answer that contradicts another, is malformed or is not asked is
    refused with 422 naming the question, and nothing is recorded."""
    return systems.record_answers(db, who, ctx.clock(), book, ref, body.answers)


@router.get("/ai-systems/{ref}/classification/result", response_model=ResultOut)
def result(ref: SystemRef, db: Db, who: Caller, ctx: Ctx, book: Book) -> ResultOut:
    """The tiers, obligations and their dates of application; 409 while questions remain."""
    return systems.classification_result(db, who, ctx.clock(), book, ref)


@router.get("/ai-systems/{ref}/classifications", response_model=list[ClassificationSummary])
def history(ref: SystemRef, db: Db, who: Caller) -> list[ClassificationSummary]:
    """Every classification of the system, newest first."""
    return systems.history(db, who, ref)


@router.post(
    "/ai-systems/{ref}/classifications",
    response_model=Classification,
    status_code=status.HTTP_201_CREATED,
)
def start(ref: SystemRef, db: Db, who: Caller, ctx: Ctx, book: Book) -> Classification:
    """Start a new classification (members, admins), e.g. after the intended purpose or the
    rules changed; earlier ones are kept."""
    return systems.start_classification(db, who, ctx.clock(), book, ref)
