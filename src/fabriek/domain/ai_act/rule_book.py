"""The rule book of the EU AI Act risk classification, as versioned data with a schema.

The questionnaire, the rules that map answers to risk tiers, the tiers' obligations and
their dates of application live in `fabriek/config/ai_act_rules.toml`, not in code: the Act
is amended and the Commission publishes guidelines, and updating the classification must
mean editing that file. This module is its schema: `parse_rule_book` turns the parsed TOML
into a `RuleBook` or refuses it with one line naming the entry at fault. It checks what a
type cannot: every reference resolves, every entry cites an article or annex point, and a
question is asked only on the answers to questions before it (so the walk always ends).

Reading the file is the service's job; `fabriek.domain.ai_act.risk` walks the questionnaire.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from fabriek.domain.config_files import FileTable, FromText

Language = Literal["en", "nl"]
LANGUAGES: tuple[Language, ...] = ("en", "nl")


def _cites_the_act(value: str) -> str:
    if not re.match(r"^(Art\. \d+|Annex [IVX]+)", value.strip()) or len(value) > 200:
        raise ValueError(
            "cite the article or annex point it rests on, e.g. 'Art. 5(1)(a)' or "
            "'Annex III, point 4(a)'"
        )
    return value.strip()


# Every rule rests on the Act's own text: an article, or an annex point.
Citation = Annotated[str, AfterValidator(_cites_the_act)]
QuestionId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,63}$")]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]

# The stages of the decision order, in the order the questionnaire walks them.
Stage = Literal["scope", "prohibited", "annex-i", "annex-iii", "derogation", "transparency", "gpai"]


class AnswerType(StrEnum):
    YES_NO = "yes-no"
    ONE_OF = "one-of"
    MANY_OF = "many-of"


_T = TypeVar("_T")

# A TOML array, kept as a tuple: strict mode would want a tuple itself, which TOML cannot
# hold; its items stay strict.
Listed = Annotated[tuple[_T, ...], FromText]


class _Strict(FileTable):
    """An entry of the rule book: no unknown keys, no coerced values (`confirmed = "no"` is
    refused, not read as true), not changed once read."""

    model_config = ConfigDict(populate_by_name=True)


class LocalText(_Strict):
    """One text in every language the rule book speaks."""

    en: str = Field(min_length=1)
    nl: str = Field(min_length=1)

    def in_(self, language: Language) -> str:
        return self.en if language == "en" else self.nl


class Condition(_Strict):
    """A test on one earlier answer, or `any` of several tests. A test on a question that
    was not answered never holds."""

    question: QuestionId | None = None
    is_: bool | Slug | None = Field(default=None, alias="is")
    any_of: Listed[Slug] | None = Field(default=None, min_length=1)
    none_of: Listed[Slug] | None = Field(default=None, min_length=1)
    some: bool | None = None
    any_: Listed[Condition] | None = Field(default=None, alias="any", min_length=1)

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        tests = [t for t in (self.is_, self.any_of, self.none_of, self.some) if t is not None]
        if self.any_ is not None:
            if self.question is not None or tests:
                raise ValueError("a condition with `any` has no question or test of its own")
        elif self.question is None or len(tests) != 1:
            raise ValueError(
                "a condition names a `question` and exactly one test: is, any_of, none_of or some"
            )
        return self

    def questions(self) -> frozenset[str]:
        """Every question this condition reads."""
        if self.any_ is not None:
            return frozenset().union(*(c.questions() for c in self.any_))
        return frozenset({self.question}) if self.question else frozenset()


class Option(_Strict):
    id: Slug
    text: LocalText
    cites: Citation
    confirmed: bool = True
    note: str = ""


class Question(_Strict):
    id: QuestionId
    stage: Stage
    type: Annotated[AnswerType, FromText]
    text: LocalText
    help: LocalText | None = None
    cites: Citation
    ask_if: Listed[Condition] = ()
    options: Listed[Option] = Field(default=(), alias="option")
    # A many-of answer must choose at least this many options (0: "none" is an answer).
    min_choices: int = Field(default=0, ge=0)
    confirmed: bool = True
    note: str = ""

    @model_validator(mode="after")
    def _options_fit_type(self) -> Question:
        if self.min_choices and (
            self.type is not AnswerType.MANY_OF or self.min_choices > len(self.options)
        ):
            raise ValueError("min_choices is for many-of questions, at most their options")
        if self.type is AnswerType.YES_NO and self.options:
            raise ValueError("a yes-no question has no options")
        if self.type is AnswerType.ONE_OF and len(self.options) < 2:
            raise ValueError("a one-of question needs at least two options")
        if self.type is AnswerType.MANY_OF and not self.options:
            raise ValueError("a many-of question needs options")
        ids = [o.id for o in self.options]
        if dupes := _duplicates(ids):
            raise ValueError(f"option ids repeat: {', '.join(dupes)}")
        return self

    def option(self, option_id: str) -> Option:
        for o in self.options:
            if o.id == option_id:
                return o
        raise KeyError(option_id)

    @property
    def option_ids(self) -> tuple[str, ...]:
        return tuple(o.id for o in self.options)


class Tier(_Strict):
    id: Slug
    name: LocalText
    summary: LocalText
    cites: Citation
    in_scope: bool = True
    obligations: Listed[Slug] = ()


class Obligation(_Strict):
    id: Slug
    text: LocalText
    cites: Citation
    applies_from: date
    roles: Listed[Slug] = Field(min_length=1)
    confirmed: bool = True
    note: str = ""


class Rule(_Strict):
    """Answers that give a tier. Rules are read in order: `unless` names tiers an earlier rule
    gave, and a `final` rule that fires ends the questionnaire."""

    id: Slug
    tier: Slug
    cites: Citation
    because: LocalText
    when: Listed[Condition]
    unless: Listed[Slug] = ()
    final: bool = False
    obligations: Listed[Slug] = ()


class Contradiction(_Strict):
    """Answers that cannot stand together: the later one is refused, naming the earlier."""

    id: Slug
    cites: Citation
    when: Listed[Condition] = Field(min_length=2)
    message: LocalText


class RuleBook(_Strict):
    """The whole questionnaire and its rules, one version of them."""

    version: str = Field(min_length=1, max_length=64)
    act: str = Field(min_length=1)
    amended_by: str = ""
    role_question: QuestionId
    baseline: Listed[Slug] = ()
    questions: Listed[Question] = Field(alias="question", min_length=1)
    tiers: Listed[Tier] = Field(alias="tier", min_length=1)
    obligations: Listed[Obligation] = Field(alias="obligation")
    rules: Listed[Rule] = Field(alias="rule", min_length=1)
    contradictions: Listed[Contradiction] = Field(default=(), alias="contradiction")

    @cached_property
    def _questions(self) -> dict[str, Question]:
        return {q.id: q for q in self.questions}

    @cached_property
    def _order(self) -> dict[str, int]:
        return {q.id: i for i, q in enumerate(self.questions)}

    @cached_property
    def _tiers(self) -> dict[str, Tier]:
        return {t.id: t for t in self.tiers}

    @cached_property
    def _obligations(self) -> dict[str, Obligation]:
        return {o.id: o for o in self.obligations}

    def question(self, question_id: str) -> Question:
        return self._questions[question_id]

    def has_question(self, question_id: str) -> bool:
        return question_id in self._questions

    def position(self, question_id: str) -> int:
        """Where the question stands in the decision order (0 first)."""
        return self._order[question_id]

    def tier(self, tier_id: str) -> Tier:
        return self._tiers[tier_id]

    def obligation(self, obligation_id: str) -> Obligation:
        return self._obligations[obligation_id]

    @model_validator(mode="after")
    def _references_resolve(self) -> RuleBook:
        _check_unique("question", [q.id for q in self.questions])
        _check_unique("tier", [t.id for t in self.tiers])
        _check_unique("obligation", [o.id for o in self.obligations])
        _check_unique("rule", [r.id for r in self.rules])
        _check_unique("contradiction", [c.id for c in self.contradictions])
        questions = {q.id: q for q in self.questions}
        order = {q.id: i for i, q in enumerate(self.questions)}
        tiers = {t.id for t in self.tiers}
        obligations = {o.id for o in self.obligations}
        role = questions.get(self.role_question)
        if role is None or role.type is not AnswerType.MANY_OF:
            raise ValueError(
                f"role_question {self.role_question!r} must name a many-of question of roles"
            )
        roles = set(role.option_ids)

        for q in self.questions:
            where = f"question {q.id!r}"
            for c in q.ask_if:
                _check_condition(c, questions, where)
                late = [n for n in c.questions() if order[n] >= order[q.id]]
                if late:
                    raise ValueError(
                        f"{where}: ask_if reads {', '.join(late)}, which is not asked before it; "
                        "a question may depend only on earlier questions"
                    )
        for o in self.obligations:
            if unknown := sorted(set(o.roles) - roles):
                raise ValueError(
                    f"obligation {o.id!r}: unknown role {', '.join(unknown)}; "
                    f"roles are the options of {self.role_question!r}: {', '.join(sorted(roles))}"
                )
        for t in self.tiers:
            _check_known(f"tier {t.id!r}", "obligation", t.obligations, obligations)
        _check_known("baseline", "obligation", self.baseline, obligations)
        given: set[str] = set()
        for r in self.rules:
            where = f"rule {r.id!r}"
            _check_known(where, "tier", [r.tier], tiers)
            _check_known(where, "obligation", r.obligations, obligations)
            for c in r.when:
                _check_condition(c, questions, where)
            if never := sorted(set(r.unless) - given):
                raise ValueError(
                    f"{where}: unless names {', '.join(never)}, which no earlier rule gives"
                )
            given.add(r.tier)
        if unreachable := sorted(tiers - given):
            raise ValueError(f"no rule gives the tier(s) {', '.join(unreachable)}")
        for x in self.contradictions:
            for c in x.when:
                _check_condition(c, questions, f"contradiction {x.id!r}")
        return self


def _duplicates(ids: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    dupes: list[str] = []
    for i in ids:
        if i in seen and i not in dupes:
            dupes.append(i)
        seen.add(i)
    return dupes


def _check_unique(kind: str, ids: list[str]) -> None:
    if dupes := _duplicates(ids):
        raise ValueError(f"{kind} ids repeat: {', '.join(dupes)}")


def _check_known(where: str, kind: str, ids: Iterable[str], known: set[str]) -> None:
    if unknown := sorted(set(ids) - known):
        raise ValueError(f"{where}: no {kind} {', '.join(unknown)}")


def _check_condition(c: Condition, questions: Mapping[str, Question], where: str) -> None:
    if c.any_ is not None:
        for inner in c.any_:
            _check_condition(inner, questions, where)
        return
    assert c.question is not None  # the model's own validator guarantees it
    q = questions.get(c.question)
    if q is None:
        raise ValueError(f"{where}: a condition names no question {c.question!r}")
    test = f"{where}: the condition on {q.id!r} ({q.type.value})"
    if c.is_ is not None:
        if q.type is AnswerType.YES_NO and not isinstance(c.is_, bool):
            raise ValueError(f"{test} must test `is = true` or `is = false`")
        if q.type is AnswerType.ONE_OF and (isinstance(c.is_, bool) or c.is_ not in q.option_ids):
            raise ValueError(f"{test} must test `is` against one of {', '.join(q.option_ids)}")
        if q.type is AnswerType.MANY_OF:
            raise ValueError(f"{test} tests a many-of answer with any_of, none_of or some")
    if c.some is not None and q.type is not AnswerType.MANY_OF:
        raise ValueError(f"{test}: `some` tests only many-of answers")
    for listed in (c.any_of, c.none_of):
        if listed is None:
            continue
        if q.type is AnswerType.YES_NO:
            raise ValueError(f"{test}: a yes-no answer is tested with `is`")
        if unknown := sorted(set(listed) - set(q.option_ids)):
            raise ValueError(f"{test} names no option {', '.join(unknown)}")


def _where(data: Mapping[str, Any], loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as a person finds it in the file: `question 'role'.text.nl`."""
    parts: list[str] = []
    node: Any = data
    for step in loc:
        if isinstance(step, int) and isinstance(node, list) and 0 <= step < len(node):
            node = node[step]
            name = node.get("id") if isinstance(node, dict) else None
            parts[-1] = f"{parts[-1]} {name!r}" if name else f"{parts[-1]}[{step}]"
            continue
        parts.append(str(step))
        node = node.get(str(step)) if isinstance(node, dict) else None
    return ".".join(parts)


def parse_rule_book(data: Mapping[str, Any]) -> RuleBook:
    """The rule book from the parsed TOML; ValueError says in one line what is wrong."""
    try:
        return RuleBook.model_validate(data)
    except ValidationError as bad:
        errors = bad.errors()
        first = errors[0]
        where = _where(data, tuple(first["loc"]))
        message = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown key (a typo?); the file's header lists the keys"
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise ValueError(f"{where + ': ' if where else ''}{message}{more}") from None
