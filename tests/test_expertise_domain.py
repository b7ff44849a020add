"""The expertise network's pure rules: regions, availability and the explained match of a
request to experts."""

from __future__ import annotations

from datetime import date
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fabriek.domain.geography import HUBS, Hub, Province
from fabriek.domain.support.expertise import (
    PROVINCE_BORDERS,
    Booking,
    Region,
    hours_booked,
    hours_left,
    neighbouring_hubs,
    parse_month,
    parse_vocabulary,
    region_of,
)
from fabriek.domain.support.matching import ExpertOption, Need, match
from fabriek.services.support.expertise import vocabulary

SKILLS = ["llm-fine-tuning", "mlops", "ai-act", "robotics", "data-governance"]
NEARER = [Region.OWN_HUB, Region.NEIGHBOURING_HUB, Region.OTHER_HUB]


def test_borders_are_mutual_and_every_hub_has_a_neighbour() -> None:
    for province, borders in PROVINCE_BORDERS.items():
        assert province not in borders
        for other in borders:
            assert province in PROVINCE_BORDERS[other], (province, other)
    assert set(PROVINCE_BORDERS) == set(Province)
    for hub in Hub:
        near = neighbouring_hubs(hub)
        assert near and hub not in near
        assert all(hub in neighbouring_hubs(other) for other in near)


def test_limburg_is_next_to_brabant_and_gelderland_only() -> None:
    assert neighbouring_hubs(Hub.BRIGHTLANDS) == {Hub.BRAINPORT, Hub.OOST_NEDERLAND}
    assert region_of(Hub.BRIGHTLANDS, Hub.BRIGHTLANDS) is Region.OWN_HUB
    assert region_of(Hub.BRAINPORT, Hub.BRIGHTLANDS) is Region.NEIGHBOURING_HUB
    assert region_of(Hub.NOORD_NEDERLAND, Hub.BRIGHTLANDS) is Region.OTHER_HUB


def test_months_are_written_as_year_and_month() -> None:
    assert parse_month("2026-11") == date(2026, 11, 1)
    assert parse_month("2026-11-29") == date(2026, 11, 1)
    with pytest.raises(ValueError, match="YYYY-MM"):
        parse_month("november")


HOURS = st.floats(min_value=0, max_value=200, allow_nan=False).map(lambda h: round(h, 2))
BOOKINGS = st.lists(st.builds(Booking, HOURS, HOURS), max_size=6)


@given(HOURS, BOOKINGS, st.builds(Booking, HOURS, HOURS))
def test_hours_left_is_never_negative_and_a_booking_never_adds_hours(
    per_month: float, bookings: list[Booking], extra: Booking
) -> None:
    left = hours_left(per_month, bookings)
    assert 0 <= left <= per_month
    assert hours_left(per_month, [*bookings, extra]) <= left
    # An overrun counts in full: delivered hours beyond a reservation use availability too.
    assert hours_booked([Booking(2, 5)]) == 5 and hours_booked([Booking(4, 1)]) == 4


OPTIONS = st.builds(
    ExpertOption,
    id=st.integers(1, 10_000),
    name=st.sampled_from(["Ans", "Bas", "Cor", "Dirk", "Els"]),
    hub=st.sampled_from(list(Hub)),
    skills=st.frozensets(st.sampled_from(SKILLS), max_size=4),
    languages=st.frozensets(st.sampled_from(["nl", "en", "de"]), max_size=3),
    hours_per_month=st.sampled_from([0.0, 4.0, 8.0, 16.0]),
    hours_left=st.sampled_from([0.0, 1.0, 2.5, 4.0, 8.0, 16.0]),
).filter(lambda o: o.hours_left <= o.hours_per_month)
NEEDS = st.builds(
    Need,
    skills=st.frozensets(st.sampled_from(SKILLS), min_size=1, max_size=3),
    hours=st.sampled_from([0.5, 2.0, 4.0, 10.0]),
    hub=st.sampled_from(list(Hub)),
    province=st.sampled_from(list(Province)) | st.none(),
    language=st.sampled_from(["nl", "en"]) | st.none(),
)


def unique_ids(options: list[ExpertOption]) -> list[ExpertOption]:
    seen: dict[int, ExpertOption] = {}
    for option in options:
        seen.setdefault(option.id, option)
    return list(seen.values())


@given(NEEDS, st.lists(OPTIONS, max_size=12).map(unique_ids))
def test_every_expert_is_proposed_or_passed_over_for_a_reason(
    need: Need, experts: list[ExpertOption]
) -> None:
    found = match(need, experts)
    proposed = {c.expert_id for c in found.candidates}
    passed = {p.expert_id for p in found.passed_over}
    assert proposed | passed == {e.id for e in experts} and not proposed & passed
    assert [c.rank for c in found.candidates] == list(range(1, len(found.candidates) + 1))
    by_id = {e.id: e for e in experts}
    for c in found.candidates:
        expert = by_id[c.expert_id]
        # Never proposed beyond their availability, nor without a skill asked.
        assert expert.hours_left >= need.hours
        assert c.matched_skills and set(c.matched_skills) <= need.skills
        assert set(c.matched_skills) | set(c.missing_skills) == need.skills
        assert c.why[0].startswith("skills:") and c.why[1].startswith("region:")
        assert c.why[-1].startswith("availability:")
    for p in found.passed_over:
        expert = by_id[p.expert_id]
        assert not expert.skills & need.skills or expert.hours_left < need.hours


@given(NEEDS, st.lists(OPTIONS, max_size=12).map(unique_ids))
def test_more_of_the_skills_asked_always_ranks_higher_then_nearer(
    need: Need, experts: list[ExpertOption]
) -> None:
    ranked = match(need, experts).candidates
    for above, below in pairwise(ranked):
        assert len(above.matched_skills) >= len(below.matched_skills)
        if len(above.matched_skills) == len(below.matched_skills):
            # With the same skills, a nearer hub always comes first.
            assert NEARER.index(above.region) <= NEARER.index(below.region)


@given(NEEDS, OPTIONS, OPTIONS)
def test_an_expert_without_the_skills_never_outranks_one_with_them(
    need: Need, with_skills: ExpertOption, without: ExpertOption
) -> None:
    able = ExpertOption(
        1, "Ans", with_skills.hub, frozenset(need.skills), with_skills.languages, 16.0, 16.0
    )
    lacking = ExpertOption(
        2, "Bas", without.hub, without.skills - need.skills, without.languages, 16.0, 16.0
    )
    found = match(need, [lacking, able])
    assert [c.expert_id for c in found.candidates] == [1]
    assert found.passed_over[0].reason == "has none of the skills asked"


def test_the_match_is_explained_in_words() -> None:
    need = Need(frozenset({"mlops", "ai-act"}), 4.0, Hub.BRIGHTLANDS, Province.LIMBURG, "nl")
    experts = [
        ExpertOption(1, "Emma", Hub.BRIGHTLANDS, frozenset({"mlops", "ai-act"}),
                     frozenset({"nl", "en"}), 12.0, 10.0),
        ExpertOption(2, "Noor", Hub.BRAINPORT, frozenset({"mlops", "ai-act"}),
                     frozenset({"en"}), 16.0, 16.0),
        ExpertOption(3, "Ahmed", Hub.AMSTERDAM, frozenset({"mlops"}), frozenset({"nl"}), 16, 16),
        ExpertOption(4, "Fenna", Hub.BRIGHTLANDS, frozenset({"mlops"}), frozenset({"nl"}), 8, 2),
    ]  # fmt: skip
    labels = {"mlops": "MLOps", "ai-act": "EU AI Act compliance"}
    found = match(need, experts, labels, date(2026, 11, 1))
    assert [c.name for c in found.candidates] == ["Emma", "Noor", "Ahmed"]
    emma, noor, ahmed = found.candidates
    assert emma.why == [
        "skills: has EU AI Act compliance, MLOps (2 of 2 asked)",
        "region: works at AI-hub Brightlands, the hub serving Limburg",
        "language: speaks nl",
        "availability: 10 h left of 12 h in 2026-11; 4 h asked",
    ]
    assert noor.why[1] == (
        "region: works at AI-hub Brainport, a neighbour of AI-hub Brightlands, the hub serving "
        "Limburg"
    )
    assert noor.why[2] == "language: does not speak nl (speaks en)"
    assert ahmed.why[0] == "skills: has MLOps (1 of 2 asked); lacks EU AI Act compliance"
    assert ahmed.region is Region.OTHER_HUB
    assert found.passed_over[0].name == "Fenna"
    assert found.passed_over[0].reason == "only 2 h left of 8 h in 2026-11; 4 h asked"


def test_the_shipped_vocabulary_has_both_labels_for_every_skill() -> None:
    shipped = vocabulary()
    assert {"llm-fine-tuning", "computer-vision-manufacturing", "distributed-training", "mlops",
            "data-governance", "ai-act"} <= set(shipped.skills)  # fmt: skip
    assert all(s.en and s.nl for s in shipped.skills.values())
    assert shipped.describe_unknown(["mlops"]) is None
    problem = shipped.describe_unknown(["mlops", "knitting"])
    assert problem is not None and "'knitting'" in problem and "mlops" in problem


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"skills": [{"code": "a", "en": "A", "nl": "A"}]}, "version"),
        ({"version": "1", "skills": []}, "at least one"),
        ({"version": "1", "skills": [{"code": "A b", "en": "A", "nl": "A"}]}, "lower-case"),
        ({"version": "1", "skills": [{"code": "a", "en": "A"}]}, "Dutch"),
        ({"version": "1", "skills": [{"code": "a", "en": "A", "nl": "A"}] * 2}, "twice"),
    ],
)
def test_a_broken_vocabulary_says_what_is_wrong(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_vocabulary(data)


def test_every_hub_name_reads_as_a_hub() -> None:
    assert all(info.name.startswith("AI-hub") for info in HUBS.values())
