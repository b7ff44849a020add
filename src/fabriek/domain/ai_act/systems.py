"""AI systems and their EU AI Act risk classification: the shapes the API and services exchange.

A project registers the AI systems it builds or uses; a classification walks the rule
book's questionnaire for one system (`fabriek.domain.ai_act.risk`) and keeps every answer
with who gave it, when, and the articles it rests on.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from fabriek.domain.ai_act.risk import (
    AnswerValue,
    ObligationDue,
    Outcome,
    RecordedAnswer,
    TierOutcome,
    Walk,
)
from fabriek.domain.ai_act.rule_book import AnswerType, LocalText, Question, Stage

SystemName = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$"),
    Field(description="unique in the factory: lowercase letters, digits, '.', '_' and '-'"),
]
# What a client may send as one answer: yes-no as a bool (or "yes"/"no"), one-of as an option
# id, many-of as a list of option ids (or "a,b"; "none" or [] for none).
RawAnswer = bool | str | list[str]


class SystemRole(StrEnum):
    """What the registering project is for the system (Art. 3(3), 3(4))."""

    PROVIDER = "provider"
    DEPLOYER = "deployer"


class AiSystemDraft(BaseModel):
    """A system a project registers: what it is for and who places it on the market."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    project: str = Field(description="project name or id")
    name: SystemName
    intended_purpose: str = Field(
        min_length=10,
        max_length=10_000,
        description="the use the provider intends, as in the instructions for use (Art. 3(12))",
    )
    provider: str = Field(
        min_length=2,
        max_length=200,
        description="the legal entity that places it on the market or puts it into service",
    )
    role: SystemRole = SystemRole.PROVIDER
    model: str | None = Field(
        default=None, description="NAME:VERSION of the registered model version it runs on"
    )


class ClassificationSummary(BaseModel):
    id: int
    finished: bool
    tiers: list[str] = Field(description="tier ids, once finished")
    rules_version: str
    updated_at: datetime


class AiSystem(BaseModel):
    id: int
    project: str
    name: str
    intended_purpose: str
    provider: str | None
    role: str
    model: str | None = Field(description="NAME:VERSION of the model version it runs on")
    created_by: str
    created_at: datetime
    classification: ClassificationSummary | None = Field(
        description="the latest classification; none yet: null"
    )


class AnswersIn(BaseModel):
    """Answers to record, by question id; several at once need not be in order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    answers: dict[str, RawAnswer] = Field(min_length=1, max_length=64)


class OptionOut(BaseModel):
    id: str
    text: LocalText
    cites: str
    confirmed: bool


class QuestionOut(BaseModel):
    id: str
    stage: Stage
    type: AnswerType
    text: LocalText
    help: LocalText | None
    cites: str
    options: list[OptionOut]


class AnswerOut(BaseModel):
    question: str
    stage: Stage
    text: LocalText
    value: bool | str | list[str]
    shown: LocalText = Field(description="the answer in words")
    cites: list[str] = Field(description="the articles and annex points it rests on")
    answered_by: str | None
    answered_at: datetime | None


class RuleOut(BaseModel):
    id: str
    cites: str
    because: LocalText


class TierOut(BaseModel):
    id: str
    name: LocalText
    summary: LocalText
    cites: str
    in_scope: bool
    because: list[RuleOut]


class ObligationOut(BaseModel):
    id: str
    text: LocalText
    cites: str
    applies_from: date
    applies_now: bool
    roles: list[str]
    yours: bool = Field(description="falls on a role the answers gave you")
    tiers: list[str] = Field(description="the tiers that bring it; [] for every system in scope")
    confirmed: bool = Field(description="false: not yet checked against the Official Journal")
    note: str


class ResultOut(BaseModel):
    in_scope: bool
    tiers: list[TierOut]
    obligations: list[ObligationOut]


class Classification(BaseModel):
    """One classification of a system: the answers so far, the next question or the result."""

    id: int | None = Field(description="null until the first answer is recorded")
    system_id: int
    system: str
    project: str
    rules_version: str
    act: str
    started_by: str | None
    started_at: datetime | None
    updated_at: datetime | None
    finished_at: datetime | None
    finished: bool
    answers: list[AnswerOut]
    pending: list[str] = Field(description="answers given ahead, counted once reached")
    dropped: list[str] = Field(
        description="earlier answers no longer asked after this change, removed"
    )
    next_question: QuestionOut | None
    result: ResultOut | None


class Who(BaseModel):
    """Who gave an answer and when, as the store keeps it."""

    by: str | None
    at: datetime | None


# --- views ------------------------------------------------------------------------------------


def question_out(q: Question) -> QuestionOut:
    return QuestionOut(
        id=q.id, stage=q.stage, type=q.type, text=q.text, help=q.help, cites=q.cites,
        options=[OptionOut(id=o.id, text=o.text, cites=o.cites, confirmed=o.confirmed)
                 for o in q.options],
    )  # fmt: skip


def shown(q: Question, value: AnswerValue) -> LocalText:
    """An answer in words, in both languages."""
    if isinstance(value, bool):
        return LocalText(en="yes" if value else "no", nl="ja" if value else "nee")
    chosen = value if isinstance(value, tuple) else (value,)
    if not chosen:
        return LocalText(en="none", nl="geen")
    texts = [q.option(v).text for v in chosen]
    return LocalText(en="; ".join(t.en for t in texts), nl="; ".join(t.nl for t in texts))


def answer_out(a: RecordedAnswer, who: Who) -> AnswerOut:
    value = list(a.value) if isinstance(a.value, tuple) else a.value
    return AnswerOut(
        question=a.question.id, stage=a.question.stage, text=a.question.text, value=value,
        shown=shown(a.question, a.value), cites=list(a.cites), answered_by=who.by,
        answered_at=who.at,
    )  # fmt: skip


def _obligation_out(d: ObligationDue) -> ObligationOut:
    o = d.obligation
    return ObligationOut(
        id=o.id, text=o.text, cites=o.cites, applies_from=o.applies_from,
        applies_now=d.applies_now, roles=list(o.roles), yours=d.yours, tiers=list(d.tiers),
        confirmed=o.confirmed, note=o.note,
    )  # fmt: skip


def _tier_out(t: TierOutcome) -> TierOut:
    return TierOut(
        id=t.tier.id, name=t.tier.name, summary=t.tier.summary, cites=t.tier.cites,
        in_scope=t.tier.in_scope,
        because=[RuleOut(id=r.id, cites=r.cites, because=r.because) for r in t.rules],
    )  # fmt: skip


def result_out(outcome: Outcome) -> ResultOut:
    return ResultOut(
        in_scope=outcome.in_scope,
        tiers=[_tier_out(t) for t in outcome.tiers],
        obligations=[_obligation_out(d) for d in outcome.obligations],
    )


def walk_parts(
    w: Walk, who: dict[str, Who]
) -> tuple[list[AnswerOut], QuestionOut | None, ResultOut | None]:
    """The answers, next question and result of a walk, as the API shows them."""
    answers = [answer_out(a, who.get(a.question.id, Who(by=None, at=None))) for a in w.answers]
    nxt = question_out(w.next_question) if w.next_question else None
    return answers, nxt, result_out(w.outcome) if w.outcome else None
