"""The AI Act rule book is data with a schema: the shipped file loads, every entry cites the
Act and speaks both languages, and a malformed file is refused in one line naming the
entry at fault (the server refuses to start on one)."""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from fabriek.api.app import create_app
from fabriek.domain.ai_act.rule_book import LANGUAGES, parse_rule_book
from fabriek.domain.errors import InvalidInput
from fabriek.services.ai_act.systems import load_rule_book
from fabriek.settings import Settings

SHIPPED: dict[str, Any] = tomllib.loads(
    resources.files("fabriek.config").joinpath("ai_act_rules.toml").read_text()
)
BOOK = load_rule_book()


def test_the_shipped_rule_book_is_versioned_and_cites_the_act() -> None:
    assert BOOK.version and "2024/1689" in BOOK.act
    assert [q.stage for q in BOOK.questions] == sorted(
        (q.stage for q in BOOK.questions),
        key=["scope", "prohibited", "annex-i", "annex-iii", "derogation", "transparency",
             "gpai"].index,
    )  # fmt: skip


def test_every_rule_and_every_entry_cites_an_article_or_annex_point() -> None:
    cited = [
        *((f"rule {r.id}", r.cites) for r in BOOK.rules),
        *((f"question {q.id}", q.cites) for q in BOOK.questions),
        *((f"option {q.id}.{o.id}", o.cites) for q in BOOK.questions for o in q.options),
        *((f"tier {t.id}", t.cites) for t in BOOK.tiers),
        *((f"obligation {o.id}", o.cites) for o in BOOK.obligations),
        *((f"contradiction {c.id}", c.cites) for c in BOOK.contradictions),
    ]
    assert len(cited) > 100
    for what, cites in cited:
        assert cites.startswith(("Art. ", "Annex ")), what


def test_every_text_is_there_in_english_and_dutch() -> None:
    texts = [
        *(q.text for q in BOOK.questions),
        *(q.help for q in BOOK.questions if q.help),
        *(o.text for q in BOOK.questions for o in q.options),
        *(t.name for t in BOOK.tiers),
        *(t.summary for t in BOOK.tiers),
        *(o.text for o in BOOK.obligations),
        *(r.because for r in BOOK.rules),
        *(c.message for c in BOOK.contradictions),
    ]
    for text in texts:
        assert all(text.in_(lang).strip() for lang in LANGUAGES)
        assert text.en != text.nl or len(text.en) < 4, text.en


def test_every_obligation_has_a_date_and_unchecked_ones_say_what_to_check() -> None:
    for o in BOOK.obligations:
        assert o.applies_from.year >= 2025
        assert o.confirmed or o.note, o.id
    dates = {o.id: o.applies_from.isoformat() for o in BOOK.obligations}
    assert dates["stop-prohibited"] == "2025-02-02"
    assert dates["gpai-copyright"] == "2025-08-02"
    assert dates["art50-1-inform-interaction"] == "2026-08-02"
    assert dates["hr-risk-management"] == "2027-12-02"
    assert dates["hr-annex-i-requirements"] == "2028-08-02"


def test_every_annex_iii_area_has_its_points_asked() -> None:
    for area in BOOK.question("annex3_areas").options:
        asked_for = [
            q for q in BOOK.questions
            if any(c.any_of == (area.id,) for c in q.ask_if) and q.id.startswith("annex3_")
        ]  # fmt: skip
        assert len(asked_for) == 1, area.id
        assert all(o.cites.startswith(area.cites) for o in asked_for[0].options)


def _entry(data: dict[str, Any], kind: str, entry_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(e for e in data[kind] if e["id"] == entry_id)
    return found


def _set(kind: str, entry_id: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        _entry(data, kind, entry_id)[key] = value

    return change


def _drop(kind: str, entry_id: str, key: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        del _entry(data, kind, entry_id)[key]

    return change


def _drop_nl(data: dict[str, Any]) -> None:
    del _entry(data, "obligation", "ai-literacy")["text"]["nl"]


def _repeat_question(data: dict[str, Any]) -> None:
    data["question"].append(copy.deepcopy(data["question"][0]))


MALFORMED = [
    (_drop("rule", "art5-1-a", "cites"), "rule 'art5-1-a'.cites: Field required"),
    (_set("rule", "art5-1-c", "cites", "see the Act"), "rule 'art5-1-c'.cites: cite the article"),
    (_set("tier", "minimal", "cites", ""), "tier 'minimal'.cites: cite the article"),
    (_drop_nl, "obligation 'ai-literacy'.text.nl: Field required"),
    (_set("obligation", "hr-registration", "applies_from", "soon"),
     "obligation 'hr-registration'.applies_from"),
    (_set("rule", "minimal-risk", "tier", "harmless"), "rule 'minimal-risk': no tier harmless"),
    (_set("rule", "open-source-system", "unless", ["minimal"]),
     "unless names minimal, which no earlier rule gives"),
    (_set("question", "eu_nexus", "ask_if", [{"question": "gpai_open", "is": True}]),
     "reads gpai_open, which is not asked before it"),
    (_set("question", "eu_nexus", "ask_if", [{"question": "is_it_ai", "is": True}]),
     "names no question 'is_it_ai'"),
    (_set("question", "eu_nexus", "ask_if", [{"question": "ai_system", "is": True, "some": True}]),
     "exactly one test"),
    (_set("question", "open_source", "ask_if", [{"question": "scope_exclusions", "is": True}]),
     "tests a many-of answer with any_of, none_of or some"),
    (_set("question", "annex1_legislation", "ask_if",
          [{"question": "annex1_product", "any_of": ["spaceship"]}]),
     "names no option spaceship"),
    (_set("question", "ai_system", "type", "maybe"), "question 'ai_system'.type"),
    (_set("question", "profiling", "colour", "red"), "question 'profiling'.colour: unknown key"),
    (_set("obligation", "dep-logs", "roles", ["importer"]), "unknown role importer"),
    (_repeat_question, "question ids repeat: ai_system"),
    # Strict types: a value is never coerced into the type the key wants.
    (_set("question", "ai_system", "confirmed", "no"),
     "question 'ai_system'.confirmed: Input should be a valid boolean"),
    (_set("question", "scope_exclusions", "min_choices", "1"),
     "question 'scope_exclusions'.min_choices: Input should be a valid integer"),
    (_set("obligation", "dep-logs", "roles", "deployer"), "obligation 'dep-logs'.roles: Input"),
    (_set("rule", "minimal-risk", "final", 1), "rule 'minimal-risk'.final: Input should be"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "words"), MALFORMED)
def test_a_malformed_rule_book_is_refused_naming_the_entry(
    change: Callable[[dict[str, Any]], None], words: str
) -> None:
    data = copy.deepcopy(SHIPPED)
    change(data)
    with pytest.raises(ValueError) as refused:
        parse_rule_book(data)
    message = str(refused.value)
    assert words in message and "\n" not in message


def test_an_operators_rules_file_is_read_and_a_broken_one_refused(tmp_path: Path) -> None:
    shipped = resources.files("fabriek.config").joinpath("ai_act_rules.toml").read_text()
    newer = tmp_path / "rules.toml"
    newer.write_text(shipped.replace('version = "2024-1689/2026.1"', 'version = "2027.1"'))
    assert load_rule_book(newer).version == "2027.1"
    broken = tmp_path / "broken.toml"
    broken.write_text(shipped.replace('cites = "Art. 5(1)(d)"', 'cites = "somewhere"', 1))
    with pytest.raises(InvalidInput) as refused:
        load_rule_book(broken)
    assert str(refused.value).startswith(f"{broken}: question 'prohibited_practices'.option")
    with pytest.raises(InvalidInput, match="cannot read the AI Act rules file"):
        load_rule_book(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("version = ")
    with pytest.raises(InvalidInput, match="not valid TOML"):
        load_rule_book(tmp_path / "bad.toml")


@pytest.mark.parametrize(
    ("good", "bad", "words"),
    [
        ('type = "yes-no"', 'type = "yes-no"\nconfrimed = false', "'ai_system'.confrimed: unknown key"),
        ('type = "yes-no"', 'type = "yes-no"\nconfirmed = "false"',
         "'ai_system'.confirmed: Input should be a valid boolean"),
    ],
)  # fmt: skip
def test_a_misspelt_key_or_a_wrong_type_is_refused_naming_the_file_and_the_key(
    tmp_path: Path, good: str, bad: str, words: str
) -> None:
    shipped = resources.files("fabriek.config").joinpath("ai_act_rules.toml").read_text()
    wrong = tmp_path / "rules.toml"
    wrong.write_text(shipped.replace(good, bad, 1))
    with pytest.raises(InvalidInput) as refused:
        load_rule_book(wrong)
    assert str(refused.value).startswith(f"{wrong}: question {words}")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_server_refuses_to_start_on_a_broken_rules_file(
    database_url: str, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('version = "x"\n')
    with pytest.raises(InvalidInput, match=r"broken\.toml"):
        create_app(Settings(database_url=database_url, ai_act_rules_file=broken))
