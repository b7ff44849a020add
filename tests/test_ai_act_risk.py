"""The EU AI Act risk classification, as pure rules over the shipped rule book: a table of
cases covering every Art. 5 practice, every Annex III point, the Art. 6(3) derogation and
its profiling override, the Annex I route, Art. 50 and GPAI; property tests of what must
hold whatever is answered; contradictions and malformed answers named by field."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from fabriek.domain.ai_act.risk import AnswerValue, Walk, answer, coerce, walk
from fabriek.domain.ai_act.rule_book import AnswerType, Question
from fabriek.domain.errors import InvalidInput
from fabriek.services.ai_act.systems import load_rule_book

BOOK = load_rule_book()
TODAY = date(2026, 11, 29)

# An AI system in the Act's scope that nothing else applies to: each case changes a few.
IN_SCOPE: dict[str, Any] = {
    "ai_system": True,
    "eu_nexus": True,
    "role": ["provider", "deployer"],
    "scope_exclusions": [],
    "open_source": False,
    "prohibited_practices": [],
    "annex1_product": "neither",
    "annex3_areas": [],
    "transparency": [],
    "gpai_provider": False,
}


def classify(today: date = TODAY, **changes: Any) -> Walk:
    """Answer as given, all at once, through the same checks the API uses."""
    answers = {**IN_SCOPE, **changes}
    result, _, _ = answer(BOOK, {}, {k: v for k, v in answers.items() if v is not None}, today)
    return result


def tiers(w: Walk) -> tuple[str, ...]:
    assert w.finished and w.outcome is not None, w.next_question
    return w.outcome.tier_ids


def obligations(w: Walk) -> dict[str, bool]:
    """Obligation id -> whether it applies on the day of the walk."""
    assert w.outcome is not None
    return {d.obligation.id: d.applies_now for d in w.outcome.obligations}


# --- the table ----------------------------------------------------------------------------------

# Art. 5(1): every prohibited practice, with the point it rests on.
ART_5 = [
    ("manipulation", "Art. 5(1)(a)"),
    ("exploiting-vulnerabilities", "Art. 5(1)(b)"),
    ("social-scoring", "Art. 5(1)(c)"),
    ("crime-prediction", "Art. 5(1)(d)"),
    ("facial-scraping", "Art. 5(1)(e)"),
    ("emotion-work-education", "Art. 5(1)(f)"),
    ("biometric-categorisation-sensitive", "Art. 5(1)(g)"),
    ("realtime-remote-biometric-identification", "Art. 5(1)(h)"),
    ("intimate-imagery", "Art. 5(1), as amended by the Digital Omnibus on AI"),
]

# Annex III: every area (the question that lists its points) and every point.
ANNEX_III = [
    ("biometrics", "annex3_biometrics", "remote-biometric-identification", "Annex III, point 1(a)"),
    ("biometrics", "annex3_biometrics", "biometric-categorisation", "Annex III, point 1(b)"),
    ("biometrics", "annex3_biometrics", "emotion-recognition", "Annex III, point 1(c)"),
    ("critical-infrastructure", "annex3_critical_infrastructure", "digital-infrastructure", "Annex III, point 2"),
    ("critical-infrastructure", "annex3_critical_infrastructure", "road-traffic", "Annex III, point 2"),
    ("critical-infrastructure", "annex3_critical_infrastructure", "utilities", "Annex III, point 2"),
    ("education", "annex3_education", "admission", "Annex III, point 3(a)"),
    ("education", "annex3_education", "learning-outcomes", "Annex III, point 3(b)"),
    ("education", "annex3_education", "education-level", "Annex III, point 3(c)"),
    ("education", "annex3_education", "proctoring", "Annex III, point 3(d)"),
    ("employment", "annex3_employment", "recruitment", "Annex III, point 4(a)"),
    ("employment", "annex3_employment", "work-decisions", "Annex III, point 4(b)"),
    ("essential-services", "annex3_essential_services", "public-benefits", "Annex III, point 5(a)"),
    ("essential-services", "annex3_essential_services", "creditworthiness", "Annex III, point 5(b)"),
    ("essential-services", "annex3_essential_services", "life-health-insurance", "Annex III, point 5(c)"),
    ("essential-services", "annex3_essential_services", "emergency-triage", "Annex III, point 5(d)"),
    ("law-enforcement", "annex3_law_enforcement", "victim-risk", "Annex III, point 6(a)"),
    ("law-enforcement", "annex3_law_enforcement", "polygraph", "Annex III, point 6(b)"),
    ("law-enforcement", "annex3_law_enforcement", "evidence-reliability", "Annex III, point 6(c)"),
    ("law-enforcement", "annex3_law_enforcement", "offending-risk", "Annex III, point 6(d)"),
    ("law-enforcement", "annex3_law_enforcement", "criminal-profiling", "Annex III, point 6(e)"),
    ("migration", "annex3_migration", "migration-polygraph", "Annex III, point 7(a)"),
    ("migration", "annex3_migration", "entry-risk", "Annex III, point 7(b)"),
    ("migration", "annex3_migration", "asylum-visa", "Annex III, point 7(c)"),
    ("migration", "annex3_migration", "border-identification", "Annex III, point 7(d)"),
    ("justice-democracy", "annex3_justice_democracy", "judicial-assistance", "Annex III, point 8(a)"),
    ("justice-democracy", "annex3_justice_democracy", "elections", "Annex III, point 8(b)"),
]  # fmt: skip

DEROGATION = [
    ("narrow-procedural-task", "Art. 6(3)(a)"),
    ("improve-human-activity", "Art. 6(3)(b)"),
    ("detect-patterns", "Art. 6(3)(c)"),
    ("preparatory-task", "Art. 6(3)(d)"),
]

ART_50 = [
    ("interacts-with-people", "art50-1-inform-interaction", "Art. 50(1)"),
    ("synthetic-content", "art50-2-mark-output", "Art. 50(2)"),
    ("emotion-or-biometric-categorisation", "art50-3-inform-exposed", "Art. 50(3)"),
    ("deep-fake", "art50-4-disclose-deep-fake", "Art. 50(4), first subparagraph"),
    ("public-interest-text", "art50-4-disclose-text", "Art. 50(4), second subparagraph"),
]


def annex_iii(area: str, question: str, point: str, **more: Any) -> dict[str, Any]:
    extra = {}
    if area == "biometrics" and point in {"biometric-categorisation", "emotion-recognition"}:
        # Art. 50(3) goes with these points (a contradiction otherwise, tested below).
        extra["transparency"] = ["emotion-or-biometric-categorisation"]
    return {"annex3_areas": [area], question: [point], **extra, **more}


def test_the_table_covers_every_practice_and_point_the_rule_book_has() -> None:
    assert [o.id for o in BOOK.question("prohibited_practices").options] == [p for p, _ in ART_5]
    areas = BOOK.question("annex3_areas").option_ids
    assert {a for a, _, _, _ in ANNEX_III} == set(areas) and len(areas) == 8
    listed = {(q, p) for _, q, p, _ in ANNEX_III}
    in_book = {
        (q.id, o.id) for q in BOOK.questions if q.id.startswith("annex3_") and q.id != "annex3_areas"
        for o in q.options
    }  # fmt: skip
    assert listed == in_book
    assert [o.id for o in BOOK.question("derogation_conditions").options] == [
        d for d, _ in DEROGATION
    ]
    assert [o.id for o in BOOK.question("transparency").options] == [t for t, _, _ in ART_50]


@pytest.mark.parametrize(("practice", "cites"), ART_5)
def test_every_art_5_practice_is_prohibited(practice: str, cites: str) -> None:
    w = classify(prohibited_practices=[practice], annex1_product=None, annex3_areas=None,
                 transparency=None, gpai_provider=None)  # fmt: skip
    assert tiers(w) == ("prohibited",)
    assert w.outcome is not None
    assert [r.cites for r in w.outcome.tiers[0].rules] == [cites]
    assert cites in w.answers[-1].cites  # the answer records the point it rests on
    stop = "stop-intimate-imagery" if practice == "intimate-imagery" else "stop-prohibited"
    assert stop in obligations(w)


def test_a_prohibited_practice_ends_the_questionnaire() -> None:
    with pytest.raises(InvalidInput) as refused:
        classify(prohibited_practices=["social-scoring"])
    assert refused.value.problems[0].field == "annex1_product"
    assert "only when prohibited_practices chose none" in refused.value.detail


@pytest.mark.parametrize(("area", "question", "point", "cites"), ANNEX_III)
def test_every_annex_iii_point_is_high_risk(
    area: str, question: str, point: str, cites: str
) -> None:
    w = classify(**annex_iii(area, question, point, profiling=False, derogation_conditions=[]))
    assert "high-risk-annex-iii" in tiers(w)
    assert "annex-iii-not-high-risk" not in tiers(w)
    recorded = {a.question.id: a.cites for a in w.answers}
    assert cites in recorded[question]
    due = obligations(w)
    assert {"hr-risk-management", "hr-registration", "dep-fria"} <= set(due)
    # Annex III duties apply from 2 Dec 2027 (as amended), not yet on the day of the walk.
    assert due["hr-risk-management"] is False


def test_an_obligation_applies_from_its_date() -> None:
    changes = annex_iii("employment", "annex3_employment", "recruitment", profiling=True)
    assert obligations(classify(date(2027, 12, 1), **changes))["hr-risk-management"] is False
    assert obligations(classify(date(2027, 12, 2), **changes))["hr-risk-management"] is True


@pytest.mark.parametrize(("condition", "cites"), DEROGATION)
def test_the_derogation_takes_an_annex_iii_system_out_of_high_risk(
    condition: str, cites: str
) -> None:
    w = classify(
        **annex_iii("employment", "annex3_employment", "recruitment", profiling=False,
                    derogation_conditions=[condition], significant_risk=False)
    )  # fmt: skip
    assert tiers(w) == ("annex-iii-not-high-risk",)
    assert {"derogation-documentation", "derogation-registration"} <= set(obligations(w))
    assert "hr-risk-management" not in obligations(w)
    assert cites in {c for a in w.answers for c in a.cites}


def test_the_derogation_does_not_hold_with_a_significant_risk() -> None:
    w = classify(
        **annex_iii("education", "annex3_education", "proctoring", profiling=False,
                    derogation_conditions=["preparatory-task"], significant_risk=True)
    )  # fmt: skip
    assert tiers(w) == ("high-risk-annex-iii",)
    assert w.outcome is not None
    assert w.outcome.tiers[0].rules[0].cites == "Art. 6(3), first subparagraph"


def test_profiling_makes_an_annex_iii_system_high_risk_and_skips_the_derogation() -> None:
    w = classify(**annex_iii("essential-services", "annex3_essential_services",
                             "creditworthiness", profiling=True))  # fmt: skip
    assert tiers(w) == ("high-risk-annex-iii",)
    assert w.outcome is not None
    assert [r.id for r in w.outcome.tiers[0].rules] == ["annex-iii-profiling"]
    assert "derogation_conditions" not in {a.question.id for a in w.answers}


def test_claiming_the_derogation_then_answering_profiling_is_a_contradiction() -> None:
    _, earlier, _ = answer(
        BOOK, {},
        {**IN_SCOPE, **annex_iii("employment", "annex3_employment", "work-decisions",
                                 profiling=False, derogation_conditions=["detect-patterns"])},
        TODAY,
    )  # fmt: skip
    with pytest.raises(InvalidInput) as refused:
        answer(BOOK, earlier, {"profiling": True}, TODAY)
    assert refused.value.problems[0].field == "profiling"
    assert "derogation_conditions (detect-patterns)" in refused.value.detail
    assert "always high-risk" in refused.value.detail
    # Given together, the later question in the decision order is the one refused.
    with pytest.raises(InvalidInput) as both:
        classify(**annex_iii("employment", "annex3_employment", "work-decisions",
                             profiling=True, derogation_conditions=["detect-patterns"]))  # fmt: skip
    assert both.value.problems[0].field == "derogation_conditions"


@pytest.mark.parametrize(("option", "obligation", "cites"), ART_50)
def test_every_art_50_duty(option: str, obligation: str, cites: str) -> None:
    w = classify(transparency=[option])
    assert tiers(w) == ("transparency",)
    due = obligations(w)
    assert obligation in due and "art50-5-clear-timely" in due
    assert due[obligation] is True  # Art. 50 applies from 2 Aug 2026
    assert w.outcome is not None and w.outcome.tiers[0].rules[0].cites == cites


def test_art_50_comes_on_top_of_high_risk() -> None:
    w = classify(**annex_iii("biometrics", "annex3_biometrics", "emotion-recognition",
                             profiling=True))  # fmt: skip
    assert tiers(w) == ("high-risk-annex-iii", "transparency")
    assert {"hr-risk-management", "art50-3-inform-exposed"} <= set(obligations(w))


def test_emotion_recognition_without_art_50_3_is_a_contradiction() -> None:
    with pytest.raises(InvalidInput) as refused:
        classify(annex3_areas=["biometrics"], annex3_biometrics=["emotion-recognition"],
                 profiling=True, transparency=["interacts-with-people"])  # fmt: skip
    assert refused.value.problems[0].field == "transparency"
    assert "Art. 50(3)" in refused.value.detail


@pytest.mark.parametrize(
    ("legislation", "rule", "duty"),
    [("medical-devices", "annex-i-section-a", "hr-annex-i-requirements"),
     ("machinery", "annex-i-section-a", "hr-annex-i-requirements"),
     ("motor-vehicles", "annex-i-section-b", "hr-annex-i-sectoral")],
)  # fmt: skip
def test_an_annex_i_product_with_third_party_assessment_is_high_risk(
    legislation: str, rule: str, duty: str
) -> None:
    w = classify(annex1_product="safety-component", annex1_legislation=[legislation],
                 annex1_third_party=True)  # fmt: skip
    assert tiers(w) == ("high-risk-annex-i",)
    assert w.outcome is not None and w.outcome.tiers[0].rules[0].id == rule
    assert duty in obligations(w) and obligations(w)[duty] is False  # from 2 Aug 2028
    without = classify(annex1_product="product", annex1_legislation=[legislation],
                       annex1_third_party=False)  # fmt: skip
    assert tiers(without) == ("minimal",)


@pytest.mark.parametrize(
    ("changes", "cites"),
    [({"ai_system": False, "eu_nexus": None, "role": None, "scope_exclusions": None,
       "open_source": None, "prohibited_practices": None, "annex1_product": None,
       "annex3_areas": None, "transparency": None, "gpai_provider": None}, "Art. 3(1)"),
     ({"eu_nexus": False, "role": None, "scope_exclusions": None, "open_source": None,
       "prohibited_practices": None, "annex1_product": None, "annex3_areas": None,
       "transparency": None, "gpai_provider": None}, "Art. 2(1)")]
    + [({"scope_exclusions": [x], "role": ["deployer"], "open_source": None,
         "prohibited_practices": None, "annex1_product": None, "annex3_areas": None,
         "transparency": None, "gpai_provider": None}, "Art. 2(3)-(10)")
       for x in ("military", "third-country-authority", "scientific-research",
                 "pre-market-research", "personal-use")],
)  # fmt: skip
def test_out_of_scope(changes: dict[str, Any], cites: str) -> None:
    w = classify(**changes)
    assert tiers(w) == ("out-of-scope",)
    assert w.outcome is not None and not w.outcome.in_scope and not w.outcome.obligations
    assert w.outcome.tiers[0].rules[0].cites == cites


def test_personal_use_does_not_excuse_a_provider() -> None:
    with pytest.raises(InvalidInput) as refused:
        classify(scope_exclusions=["personal-use"])
    assert refused.value.problems[0].field == "scope_exclusions"
    assert "Art. 2(10)" in refused.value.detail


def test_an_open_source_system_is_outside_the_act_unless_high_risk_or_art_50() -> None:
    assert tiers(classify(open_source=True)) == ("open-source-exempt",)
    assert tiers(classify(open_source=True, transparency=["synthetic-content"])) == (
        "transparency",
    )
    high = classify(open_source=True, **annex_iii("employment", "annex3_employment",
                                                  "recruitment", profiling=True))  # fmt: skip
    assert tiers(high) == ("high-risk-annex-iii",)


def test_gpai_model_duties() -> None:
    closed = classify(gpai_provider=True, gpai_systemic=False, gpai_open=False)
    assert tiers(closed) == ("gpai",)
    assert {"gpai-technical-documentation", "gpai-copyright"} <= set(obligations(closed))
    opened = classify(gpai_provider=True, gpai_systemic=False, gpai_open=True)
    assert tiers(opened) == ("gpai",)
    assert "gpai-technical-documentation" not in obligations(opened)  # Art. 53(2)
    assert "gpai-copyright" in obligations(opened)
    systemic = classify(gpai_provider=True, gpai_systemic=True)
    assert tiers(systemic) == ("gpai-systemic",)
    assert {"gpai-notify-commission", "gpai-evaluation", "gpai-technical-documentation"} <= set(
        obligations(systemic)
    )


def test_minimal_risk_and_the_duties_that_fall_on_each_role() -> None:
    w = classify()
    assert tiers(w) == ("minimal",)
    assert set(obligations(w)) == {"ai-literacy", "voluntary-codes"}
    deployer = classify(role=["deployer"], transparency=["interacts-with-people", "deep-fake"])
    assert deployer.outcome is not None
    yours = {d.obligation.id: d.yours for d in deployer.outcome.obligations}
    assert yours["art50-4-disclose-deep-fake"] and not yours["art50-1-inform-interaction"]


def test_changing_an_earlier_answer_drops_the_answers_it_makes_moot() -> None:
    _, earlier, _ = answer(
        BOOK, {}, {**IN_SCOPE, **annex_iii("employment", "annex3_employment", "recruitment",
                                           profiling=True)}, TODAY)  # fmt: skip
    w, kept, dropped = answer(BOOK, earlier, {"annex3_areas": []}, TODAY)
    assert set(dropped) == {"annex3_employment", "profiling"}
    assert "profiling" not in kept and tiers(w) == ("minimal",)


def test_answers_given_ahead_wait_until_the_walk_reaches_them() -> None:
    w, kept, _ = answer(BOOK, {}, {"ai_system": True, "transparency": ["deep-fake"]}, TODAY)
    assert w.next_question is not None and w.next_question.id == "eu_nexus"
    assert w.pending == ("transparency",) and "transparency" in kept


# --- malformed answers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "raw", "value"),
    [("ai_system", "yes", True), ("ai_system", "Nee", False), ("ai_system", False, False),
     ("annex1_product", "product", "product"),
     ("annex3_areas", "education, biometrics", ("biometrics", "education")),
     ("annex3_areas", ["employment"], ("employment",)), ("annex3_areas", "none", ()),
     ("annex3_areas", [], ())],
)  # fmt: skip
def test_answers_are_read_in_every_reasonable_form(
    question: str, raw: object, value: AnswerValue
) -> None:
    assert coerce(BOOK.question(question), raw) == value


@pytest.mark.parametrize(
    ("given", "field", "words"),
    [({"ai_system": "maybe"}, "ai_system", "yes or no"),
     ({"annex1_product": "toaster"}, "annex1_product", "one of: safety-component"),
     ({"annex3_areas": "none,education"}, "annex3_areas", "cannot be combined"),
     ({"annex3_areas": "schools"}, "annex3_areas", "no option 'schools'"),
     ({"risk": True}, "risk", "no such question"),
     ({"ai_system": False, "eu_nexus": True}, "eu_nexus", "only when ai_system is yes")],
)  # fmt: skip
def test_a_bad_answer_is_refused_naming_its_field(
    given: dict[str, object], field: str, words: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        answer(BOOK, {}, given, TODAY)
    assert refused.value.problems[0].field == field
    assert words in refused.value.detail


# --- properties ---------------------------------------------------------------------------------


def value_of(q: Question) -> st.SearchStrategy[AnswerValue]:
    if q.type is AnswerType.YES_NO:
        return st.booleans()
    if q.type is AnswerType.ONE_OF:
        return st.sampled_from(q.option_ids)
    return st.lists(st.sampled_from(q.option_ids), min_size=q.min_choices, unique=True).map(
        lambda chosen: tuple(o for o in q.option_ids if o in chosen)
    )


ANY_ANSWERS = st.fixed_dictionaries(
    {}, optional={q.id: value_of(q) for q in BOOK.questions}
)  # fmt: skip
IN_SCOPE_VALUES: dict[str, AnswerValue] = {
    "ai_system": True, "eu_nexus": True, "scope_exclusions": (),
}  # fmt: skip


def finish(data: st.DataObject, answers: dict[str, AnswerValue]) -> Walk:
    """Answer whatever is asked next, drawn at random, until the walk ends; it must end
    within as many steps as there are questions."""
    for _ in range(len(BOOK.questions) + 1):
        w = walk(BOOK, answers, TODAY)
        if w.finished:
            return w
        assert w.next_question is not None and w.next_question.id not in answers
        answers[w.next_question.id] = data.draw(value_of(w.next_question))
    raise AssertionError("the walk did not end")


@given(st.data(), ANY_ANSWERS)
def test_the_walk_always_ends_in_at_least_one_tier(
    data: st.DataObject, answers: dict[str, AnswerValue]
) -> None:
    w = finish(data, answers)
    assert w.outcome is not None and w.outcome.tiers
    ids = w.outcome.tier_ids
    assert "minimal" not in ids or ids == ("minimal",)
    if not w.outcome.in_scope:
        assert not [d for d in w.outcome.obligations if "open-source-exempt" not in d.tiers]
    for d in w.outcome.obligations:
        assert d.obligation.cites.startswith(("Art.", "Annex"))


@given(st.data(), ANY_ANSWERS, st.lists(st.sampled_from(BOOK.question("prohibited_practices").option_ids), min_size=1, unique=True))  # fmt: skip
def test_any_art_5_practice_is_prohibited_whatever_else_is_answered(
    data: st.DataObject, answers: dict[str, AnswerValue], practices: list[str]
) -> None:
    answers.update(IN_SCOPE_VALUES, prohibited_practices=tuple(practices))
    answers.setdefault("role", ("provider",))
    w = finish(data, answers)
    assert w.outcome is not None and w.outcome.tier_ids == ("prohibited",)
    assert len(w.outcome.tiers[0].rules) == len(practices)


@given(st.data(), ANY_ANSWERS, st.sampled_from(ANNEX_III))
def test_a_profiling_annex_iii_system_is_never_not_high_risk(
    data: st.DataObject, answers: dict[str, AnswerValue], point: tuple[str, str, str, str]
) -> None:
    area, question, option, _ = point
    answers.update(IN_SCOPE_VALUES, prohibited_practices=(), profiling=True)
    answers.setdefault("role", ("provider",))
    answers["annex3_areas"] = (*answers.get("annex3_areas", ()), area)  # type: ignore[misc]
    answers[question] = (*answers.get(question, ()), option)  # type: ignore[misc]
    w = finish(data, answers)
    assert w.outcome is not None
    assert "high-risk-annex-iii" in w.outcome.tier_ids
    assert "annex-iii-not-high-risk" not in w.outcome.tier_ids


@given(st.data(), ANY_ANSWERS)
def test_answering_one_by_one_gives_what_answering_at_once_gives(
    data: st.DataObject, answers: dict[str, AnswerValue]
) -> None:
    finished = finish(data, answers)
    counted = {a.question.id: a.value for a in finished.answers}
    try:
        at_once, _, _ = answer(BOOK, {}, counted, TODAY)
    except InvalidInput:
        assume(False)  # answers that contradict each other are refused either way
    so_far: dict[str, AnswerValue] = {}
    for q, v in counted.items():
        w, so_far, dropped = answer(BOOK, so_far, {q: v}, TODAY)
        assert not dropped
    assert w.outcome is not None and at_once.outcome is not None
    assert w.outcome.tier_ids == at_once.outcome.tier_ids == finished.outcome.tier_ids  # type: ignore[union-attr]
