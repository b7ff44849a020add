"""The EU AI Act risk classification of an AI system: a walk through the questionnaire.

Pure: the rule book (`fabriek.domain.ai_act.rule_book`), the answers so far and today's date
come in; out come the answers that count (each with the articles it rests on), the next
question, or, once the walk is over, the tiers, the obligations and their dates of
application. The decision order is the rule book's question order: scope and exclusions
(Art. 2), prohibited practices (Art. 5), the Annex I product route (Art. 6(1)), the Annex III
areas and points (Art. 6(2)), the Art. 6(3) derogation and its profiling override, the
transparency duties (Art. 50), general-purpose AI models (Art. 51-55).

The walk is one pass over the questions, so it always ends. A question is asked when its
`ask_if` holds on the earlier answers; an answer to a question that is not asked does not
count; a `final` rule (out of scope, prohibited) ends the walk as soon as it fires.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from fabriek.domain.ai_act.rule_book import (
    AnswerType,
    Condition,
    Obligation,
    Question,
    Rule,
    RuleBook,
    Tier,
)
from fabriek.domain.errors import InvalidInput

AnswerValue = bool | str | tuple[str, ...]
Answers = Mapping[str, AnswerValue]

YES = frozenset({"yes", "y", "true", "ja", "j"})
NO = frozenset({"no", "n", "false", "nee"})
NONE = "none"


@dataclass(frozen=True)
class RecordedAnswer:
    """An answer that counts, with every article or annex point it rests on: the
    question's own and those of the options chosen."""

    question: Question
    value: AnswerValue
    cites: tuple[str, ...]


@dataclass(frozen=True)
class TierOutcome:
    tier: Tier
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class ObligationDue:
    """An obligation of the result: from which tiers, whether it falls on the caller's
    role(s), and whether it applies already on the day of the walk."""

    obligation: Obligation
    tiers: tuple[str, ...]
    yours: bool
    applies_now: bool


@dataclass(frozen=True)
class Outcome:
    tiers: tuple[TierOutcome, ...]
    obligations: tuple[ObligationDue, ...]

    @property
    def in_scope(self) -> bool:
        return any(t.tier.in_scope for t in self.tiers)

    @property
    def tier_ids(self) -> tuple[str, ...]:
        return tuple(t.tier.id for t in self.tiers)


@dataclass(frozen=True)
class Walk:
    """Where a classification stands.

    `answers` count, in the decision order. `pending` were given for questions after the
    next one: they count once the walk reaches them. `not_applicable` were given for
    questions the earlier answers skip (or after the walk ended): they do not count.
    """

    answers: tuple[RecordedAnswer, ...]
    next_question: Question | None
    outcome: Outcome | None
    pending: tuple[str, ...]
    not_applicable: tuple[str, ...]

    @property
    def finished(self) -> bool:
        return self.next_question is None


# --- conditions and rules ---------------------------------------------------------------------


def holds(c: Condition, answers: Answers) -> bool:
    """Whether a condition holds on these answers (never on a question not answered)."""
    if c.any_ is not None:
        return any(holds(inner, answers) for inner in c.any_)
    assert c.question is not None
    if c.question not in answers:
        return False
    value = answers[c.question]
    chosen = set(value) if isinstance(value, tuple) else {value}
    if c.is_ is not None:
        return value == c.is_ and type(value) is type(c.is_)
    if c.some is not None:
        return isinstance(value, tuple) and bool(value) == c.some
    if c.any_of is not None:
        return bool(chosen & set(c.any_of))
    if c.none_of is not None:
        return not chosen & set(c.none_of)
    return False


def holds_all(conditions: Iterable[Condition], answers: Answers) -> bool:
    return all(holds(c, answers) for c in conditions)


def _fire(rules: Iterable[Rule], answers: Answers) -> list[Rule]:
    """The rules that fire, in order; a rule's `unless` sees the tiers of those before it."""
    fired: list[Rule] = []
    given: set[str] = set()
    for r in rules:
        if holds_all(r.when, answers) and not given & set(r.unless):
            fired.append(r)
            given.add(r.tier)
    return fired


def _final(book: RuleBook, answers: Answers) -> list[Rule]:
    return _fire((r for r in book.rules if r.final), answers)


def outcome(book: RuleBook, answers: Answers, today: date) -> Outcome:
    """The tiers and obligations the answers give. Only final rules count when one fires."""
    fired = _final(book, answers) or _fire((r for r in book.rules if not r.final), answers)
    by_tier: dict[str, list[Rule]] = {}
    for r in fired:
        by_tier.setdefault(r.tier, []).append(r)
    tiers = tuple(TierOutcome(t, tuple(by_tier[t.id])) for t in book.tiers if t.id in by_tier)
    brought: dict[str, list[str]] = {}
    for r in fired:
        for o in (*book.tier(r.tier).obligations, *r.obligations):
            sources = brought.setdefault(o, [])
            if r.tier not in sources:
                sources.append(r.tier)
    if any(t.tier.in_scope for t in tiers):
        for o in book.baseline:
            brought.setdefault(o, [])
    role_answer = answers.get(book.role_question, ())
    roles = set(role_answer) if isinstance(role_answer, tuple) else set()
    order = {o.id: i for i, o in enumerate(book.obligations)}
    due = [
        ObligationDue(
            book.obligation(o),
            tuple(sources),
            yours=bool(roles & set(book.obligation(o).roles)),
            applies_now=book.obligation(o).applies_from <= today,
        )
        for o, sources in brought.items()
    ]
    due.sort(key=lambda d: (d.obligation.applies_from, order[d.obligation.id]))
    return Outcome(tiers, tuple(due))


# --- the walk ---------------------------------------------------------------------------------


def _record(q: Question, value: AnswerValue) -> RecordedAnswer:
    chosen = value if isinstance(value, tuple) else (value,) if isinstance(value, str) else ()
    cites = [q.cites, *(q.option(v).cites for v in chosen if v in q.option_ids)]
    return RecordedAnswer(q, value, tuple(dict.fromkeys(cites)))


def walk(book: RuleBook, answers: Answers, today: date) -> Walk:
    """Where the classification stands with these answers: the next question, or the result.
    Answers must already be well-formed (see `coerce`); unknown questions are not applicable."""
    counted: dict[str, AnswerValue] = {}
    recorded: list[RecordedAnswer] = []
    skipped: list[str] = []
    next_question: Question | None = None
    for i, q in enumerate(book.questions):
        if _final(book, counted):
            skipped.extend(x.id for x in book.questions[i:] if x.id in answers)
            break
        if not holds_all(q.ask_if, counted):
            if q.id in answers:
                skipped.append(q.id)
            continue
        if q.id not in answers:
            next_question = q
            break
        counted[q.id] = answers[q.id]
        recorded.append(_record(q, answers[q.id]))
    pending: list[str] = []
    if next_question is not None:
        later = book.questions[book.position(next_question.id) + 1 :]
        pending = [x.id for x in later if x.id in answers]
    unknown = [a for a in answers if not book.has_question(a)]
    return Walk(
        answers=tuple(recorded),
        next_question=next_question,
        outcome=None if next_question else outcome(book, counted, today),
        pending=tuple(pending),
        not_applicable=(*skipped, *unknown),
    )


# --- answering --------------------------------------------------------------------------------


def coerce(q: Question, raw: object) -> AnswerValue:
    """An answer as given (JSON or a command line) in its one well-formed shape: a bool for
    yes-no, an option id for one-of, a tuple of option ids in the questionnaire's order for
    many-of ("a,b", ["a", "b"]; "none" or [] for none). InvalidInput names the question."""
    if q.type is AnswerType.YES_NO:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in YES | NO:
            return raw.strip().lower() in YES
        raise InvalidInput.on(q.id, f"answer yes or no (true or false), not {raw!r}")
    known = ", ".join(q.option_ids)
    if q.type is AnswerType.ONE_OF:
        if isinstance(raw, str) and raw.strip() in q.option_ids:
            return raw.strip()
        raise InvalidInput.on(q.id, f"answer one of: {known}; not {raw!r}")
    if isinstance(raw, str):
        items = [p.strip() for p in raw.split(",") if p.strip()]
    elif isinstance(raw, list | tuple) and all(isinstance(p, str) for p in raw):
        items = [str(p).strip() for p in raw]
    else:
        raise InvalidInput.on(q.id, f"answer a list of options from: {known}; or none")
    if NONE in items and len(items) > 1:
        raise InvalidInput.on(q.id, "'none' cannot be combined with other options")
    items = [p for p in items if p != NONE]
    if unknown := [p for p in items if p not in q.option_ids]:
        raise InvalidInput.on(
            q.id, f"no option {', '.join(repr(u) for u in unknown)}; choose from: {known}; or none"
        )
    chosen = tuple(o for o in q.option_ids if o in items)
    if len(chosen) < q.min_choices:
        raise InvalidInput.on(q.id, f"choose at least {q.min_choices} of: {known}")
    return chosen


def well_formed(
    book: RuleBook, stored: Mapping[str, object]
) -> tuple[dict[str, AnswerValue], tuple[str, ...]]:
    """Stored answers as this rule book reads them, and those it cannot (a question or an
    option a newer version of the rules no longer has)."""
    kept: dict[str, AnswerValue] = {}
    lost: list[str] = []
    for qid, raw in stored.items():
        try:
            kept[qid] = coerce(book.question(qid), raw)
        except (KeyError, InvalidInput):
            lost.append(qid)
    return kept, tuple(lost)


def describe(value: AnswerValue) -> str:
    """An answer in a few words, for messages."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple):
        return ", ".join(value) or NONE
    return value


def _describe_condition(c: Condition) -> str:
    if c.any_ is not None:
        return " or ".join(_describe_condition(i) for i in c.any_)
    if c.is_ is not None:
        return f"{c.question} is {describe(c.is_)}"
    if c.some is not None:
        return f"{c.question} chose {'some option' if c.some else 'none'}"
    if c.any_of is not None:
        return f"{c.question} includes {' or '.join(c.any_of)}"
    return f"{c.question} excludes {', '.join(c.none_of or ())}"


def _check_contradictions(book: RuleBook, merged: Answers, given: Iterable[str]) -> None:
    new = set(given)
    for x in book.contradictions:
        read = set().union(*(c.questions() for c in x.when))
        if not read & new or not holds_all(x.when, merged):
            continue
        # The later answer in the decision order is the one that contradicts.
        field = max(read & new, key=book.position)
        earlier = sorted(read - {field}, key=book.position)
        answered = ", ".join(f"{q} ({describe(merged[q])})" for q in earlier)
        raise InvalidInput.on(
            field,
            f"contradicts your answer to {answered}: {x.message.en} ({x.cites})",
        )


def answer(
    book: RuleBook, earlier: Answers, given: Mapping[str, object], today: date
) -> tuple[Walk, dict[str, AnswerValue], tuple[str, ...]]:
    """Record `given` answers (raw, as a client sends them) on top of the `earlier` ones.

    Returns the walk, the answers to keep and the earlier answers dropped because a changed
    answer now skips their question. InvalidInput, naming the field, for an unknown
    question, a malformed answer, an answer that contradicts another, or an answer to a
    question the answers so far skip; nothing is recorded then.
    """
    if not given:
        raise InvalidInput.on("answers", "give at least one answer")
    coerced: dict[str, AnswerValue] = {}
    for qid, raw in given.items():
        if not book.has_question(qid):
            raise InvalidInput.on(
                qid,
                f"no such question in the questionnaire (version {book.version}); "
                f"its questions are: {', '.join(q.id for q in book.questions)}",
            )
        coerced[qid] = coerce(book.question(qid), raw)
    merged = {**earlier, **coerced}
    _check_contradictions(book, merged, coerced)
    result = walk(book, merged, today)
    for qid in sorted(coerced, key=book.position):
        if qid not in result.not_applicable:
            continue
        q = book.question(qid)
        if holds_all(q.ask_if, {a.question.id: a.value for a in result.answers}):
            ended = ", ".join(result.outcome.tier_ids) if result.outcome else "its result"
            reason = f"not asked: the answers before it already settle the classification ({ended})"
        else:
            reason = "not asked: it applies only when " + " and ".join(
                _describe_condition(c) for c in q.ask_if
            )
        raise InvalidInput.on(qid, reason)
    dropped = tuple(q for q in result.not_applicable if q in earlier)
    kept = {q: v for q, v in merged.items() if q not in dropped}
    return result, kept, dropped
