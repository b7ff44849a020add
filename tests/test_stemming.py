"""The Snowball Dutch stemmer that SQLite's full-text search relies on: word forms meet at
one stem, it agrees with PostgreSQL's own `dutch` stemmer, and snippets bold what matched."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fabriek.domain.support.knowledge import plain_text, snippet
from fabriek.domain.support.stemming import DUTCH_STOP_WORDS, stem_dutch, words
from tests.servers import PG_ADMIN, postgres_unavailable

# Word forms users type, and the form an article uses: each pair meets at one stem.
FORMS = [
    ("rekentaken", "rekentaak"),
    ("aanvragen", "aanvraag"),
    ("budgetten", "budget"),
    ("gemeenten", "gemeente"),
    ("lichamelijkheden", "lichamelijk"),
    ("opleidingen", "opleiding"),
    ("datasets", "dataset"),
    ("toekenningen", "toekenning"),
    ("betaalbare", "betaalbaar"),
    ("broden", "brood"),
]


@pytest.mark.parametrize(("form", "base"), FORMS)
def test_word_forms_meet_at_one_stem(form: str, base: str) -> None:
    assert stem_dutch(form) == stem_dutch(base)


@pytest.mark.parametrize(
    ("word", "stem"),
    [
        # From the Snowball site's Dutch sample vocabulary and output.
        ("lichamelijk", "licham"),
        ("lichamelijke", "licham"),
        ("lichamen", "licham"),
        ("lichtdoorlatende", "lichtdoorlat"),
        ("lichtgevend", "lichtgev"),
        ("lichtzinnig", "lichtzinn"),
        ("rekentaak", "rekentak"),
        ("aanvraag", "aanvrag"),
        ("maan", "man"),
        ("kaas", "kas"),
        # A y after a vowel and an i between vowels are consonants.
        ("mooiheid", "mooiheid"),
        ("ayuda", "ayuda"),
    ],
)
def test_known_stems(word: str, stem: str) -> None:
    assert stem_dutch(word) == stem


def test_words_split_like_the_stores_parsers() -> None:
    assert list(words("GPU-uren, Rekentaken_2026 (H100)")) == [
        "gpu", "uren", "rekentaken", "2026", "h100"
    ]  # fmt: skip


DUTCHISH = st.text(alphabet="aeiouybcdfghjklmnprstvwz", min_size=1, max_size=14)
SUFFIXES = st.sampled_from(
    ["", "en", "ene", "s", "se", "heden", "heid", "end", "ing", "ig", "lijk", "baar", "bar",
     "e", "ingen", "igheid", "lijke", "baarheid", "tte", "dden"]
)  # fmt: skip


@given(DUTCHISH, SUFFIXES)
def test_a_stem_is_lower_case_and_never_longer_than_its_word(word: str, suffix: str) -> None:
    stem = stem_dutch(word + suffix)
    assert stem == stem.lower()
    assert len(stem) <= len(word + suffix)


@pytest.fixture(scope="module")
def postgres() -> Iterator[psycopg.Connection]:
    if reason := postgres_unavailable():
        pytest.skip(reason)
    with psycopg.connect(PG_ADMIN) as conn:
        yield conn


@settings(max_examples=400)
@given(DUTCHISH, SUFFIXES)
def test_agrees_with_postgresqls_dutch_stemmer(
    postgres: psycopg.Connection, word: str, suffix: str
) -> None:
    """PostgreSQL's `dutch_stem` runs Snowball's own C code: the reference. (Words with
    accented letters are left out: PostgreSQL 15 counts R1's 'at least three letters' in
    bytes, Snowball's algorithm in letters.)"""
    text = word + suffix
    found = postgres.execute("SELECT ts_lexize('dutch_stem', %s)", (text,)).fetchone()
    assert found is not None
    if not found[0]:  # a stop word: PostgreSQL gives no stem at all
        assert text in DUTCH_STOP_WORDS
        return
    assert stem_dutch(text) == found[0][0]


def test_plain_text_drops_markup_and_keeps_link_text() -> None:
    assert plain_text("## Budget\n\nSee **[the docs](docs/access.md)** and `fabriek budget`.") == (
        "Budget See the docs and fabriek budget ."
    )


def test_a_snippet_is_the_passage_with_most_matches_in_bold() -> None:
    body = " ".join(["vul"] * 40) + " een aanvraag voor rekentaken " + " ".join(["rest"] * 40)
    wanted = {stem_dutch("aanvragen"), stem_dutch("rekentaak")}
    found = snippet(body, lambda token: any(stem_dutch(w) in wanted for w in words(token)), 10)
    assert "**aanvraag**" in found and "**rekentaken**" in found
    assert found.startswith("… ") and found.endswith(" …")
    assert len(found.replace("… ", "").replace(" …", "").split()) == 10


@given(st.lists(st.sampled_from(["a", "b", "c"]), max_size=60), st.integers(1, 30))
def test_a_snippet_never_has_more_words_than_asked(tokens: list[str], width: int) -> None:
    found = snippet(" ".join(tokens), lambda token: token == "b", width)
    kept = [t for t in found.split() if t != "…"]
    assert len(kept) == min(width, len(tokens))
    best = max(
        (
            sum(t == "b" for t in tokens[i : i + width])
            for i in range(max(1, len(tokens) - width + 1))
        ),
        default=0,
    )
    assert sum(t == "**b**" for t in kept) == best
