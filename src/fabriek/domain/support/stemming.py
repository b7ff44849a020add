"""Stemming for full-text search: the Snowball Dutch stemmer, and the stop words of Dutch
and English.

SQLite's FTS5 has no Dutch stemmer (its `porter` tokenizer is English only), so for the
embedded store Fabriek stems Dutch text itself, with the same algorithm PostgreSQL's `dutch`
text-search configuration uses: the original Snowball Dutch stemmer by Martin Porter,
https://snowballstem.org/algorithms/dutch/stemmer.html (the `dutch.sbl` of Snowball 2.x,
BSD licence; Snowball 3 keeps it as `dutch_porter`). The text is stemmed before it is
indexed and the query before it is matched, so "rekentaken" finds "rekentaak" (both stem
to "rekentak") and "aanvragen" finds "aanvraag" ("aanvrag").

The stop words are Snowball's lists (the ones PostgreSQL's `dutch.stop` and
`english.stop` ship): words too common to say what a text is about.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# Snowball's Dutch vowels; a `y` or `i` that acts as a consonant is upper-cased first.
_VOWELS = frozenset("aeiouyè")
_ACCENTS = str.maketrans("äëïöüáéíóú", "aeiouaeiou")
_WORD = re.compile(r"[^\W_]+")


def _is_vowel(ch: str) -> bool:
    return ch in _VOWELS


def _mark_consonants(word: list[str]) -> None:
    """Snowball's prelude: an initial y, a y after a vowel and an i between vowels are
    consonants (written I and Y until the end)."""
    if word and word[0] == "y":
        word[0] = "Y"
    # Left to right, in place: Snowball's `goto` resumes where the last match began, so a
    # vowel can serve both the i before it and the i after it.
    for start in range(len(word) - 1):
        if not _is_vowel(word[start]):
            continue
        nxt = word[start + 1]
        if nxt == "i" and start + 2 < len(word) and _is_vowel(word[start + 2]):
            word[start + 1] = "I"
        elif nxt == "y":
            word[start + 1] = "Y"


def _regions(word: str) -> tuple[int, int]:
    """R1 and R2 as positions: each starts after the first non-vowel that follows a vowel
    (R2 counted from R1); R1 leaves at least three letters before it."""
    n = len(word)

    def after_vowel_then_consonant(start: int) -> int | None:
        i = start
        while i < n and not _is_vowel(word[i]):
            i += 1
        while i < n and _is_vowel(word[i]):
            i += 1
        return i + 1 if i < n else None

    p1 = after_vowel_then_consonant(0)
    if p1 is None:
        return n, n
    p2 = after_vowel_then_consonant(p1)
    return max(p1, 3), n if p2 is None else p2


class _Word:
    """A word being stemmed, with its regions (which never move: suffixes only shrink it)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.p1, self.p2 = _regions(text)
        self.e_found = False

    def ends(self, suffix: str) -> bool:
        return self.text.endswith(suffix)

    def before(self, suffix: str) -> str:
        return self.text[: len(self.text) - len(suffix)]

    def in_r1(self, suffix: str) -> bool:
        return len(self.text) - len(suffix) >= self.p1

    def in_r2(self, suffix: str) -> bool:
        return len(self.text) - len(suffix) >= self.p2

    def cut(self, suffix: str) -> None:
        self.text = self.before(suffix)

    def undouble(self) -> None:
        if self.text.endswith(("kk", "dd", "tt")):
            self.text = self.text[:-1]

    def en_ending(self, suffix: str) -> bool:
        """Delete `suffix` (en, ene) in R1 after a non-vowel that does not end 'gem'."""
        stem = self.before(suffix)
        if self.in_r1(suffix) and stem and not _is_vowel(stem[-1]) and not stem.endswith("gem"):
            self.text = stem
            self.undouble()
            return True
        return False

    def e_ending(self) -> None:
        """Delete a final e in R1 after a non-vowel, then undouble."""
        self.e_found = False
        stem = self.before("e")
        if self.ends("e") and self.in_r1("e") and stem and not _is_vowel(stem[-1]):
            self.text = stem
            self.e_found = True
            self.undouble()


def _longest(word: str, suffixes: tuple[str, ...]) -> str | None:
    return max((s for s in suffixes if word.endswith(s)), key=len, default=None)


def _standard_suffix(w: _Word) -> None:
    # Step 1: the longest of heden, en/ene, s/se (only the longest is tried).
    suffix = _longest(w.text, ("heden", "en", "ene", "s", "se"))
    if suffix == "heden":
        if w.in_r1(suffix):
            w.text = w.before(suffix) + "heid"
    elif suffix in ("en", "ene"):
        w.en_ending(suffix)
    elif suffix in ("s", "se"):
        stem = w.before(suffix)
        if w.in_r1(suffix) and stem and not _is_vowel(stem[-1]) and stem[-1] != "j":
            w.text = stem
    # Step 2: a final e.
    w.e_ending()
    # Step 3a: heid, not after c; then an en before it as in step 1.
    if w.ends("heid") and w.in_r2("heid") and not w.before("heid").endswith("c"):
        w.cut("heid")
        if w.ends("en"):
            w.en_ending("en")
    # Step 3b: derivational suffixes.
    suffix = _longest(w.text, ("end", "ing", "ig", "lijk", "baar", "bar"))
    if suffix in ("end", "ing") and w.in_r2(suffix):
        w.cut(suffix)
        if w.ends("ig") and w.in_r2("ig") and not w.before("ig").endswith("e"):
            w.cut("ig")
        else:
            w.undouble()
    elif suffix == "ig" and w.in_r2(suffix) and not w.before(suffix).endswith("e"):
        w.cut(suffix)
    elif suffix == "lijk" and w.in_r2(suffix):
        w.cut(suffix)
        w.e_ending()
    elif suffix in ("baar", "bar") and w.in_r2(suffix) and (suffix == "baar" or w.e_found):
        # bar only where step 2 took an e: betaalbare -> betaalbar -> betal
        w.cut(suffix)
    # Step 4: undouble a vowel before a final consonant: maan -> man, brood -> brod.
    t = w.text
    if (
        len(t) >= 4
        and not _is_vowel(t[-1])
        and t[-1] != "I"
        and t[-3:-1] in ("aa", "ee", "oo", "uu")
        and not _is_vowel(t[-4])
    ):
        w.text = t[:-2] + t[-1]


def stem_dutch(word: str) -> str:
    """The Snowball Dutch stem of one lower-case word."""
    letters = list(word.lower().translate(_ACCENTS))
    _mark_consonants(letters)
    w = _Word("".join(letters))
    _standard_suffix(w)
    return w.text.replace("I", "i").replace("Y", "y")


def words(text: str) -> Iterator[str]:
    """The words of a text, lower-cased: runs of letters and digits (an underscore,
    hyphen or punctuation separates them, as in both stores' parsers)."""
    for match in _WORD.finditer(text):
        yield match.group().lower()


_DUTCH_STOP = """
    de en van ik te dat die in een hij het niet zijn is was op aan met als voor had er maar
    om hem dan zou of wat mijn men dit zo door over ze zich bij ook tot je mij uit der daar
    haar naar heb hoe heeft hebben deze u want nog zal me zij nu ge geen omdat iets worden
    toch al waren veel meer doen toen moet ben zonder kan hun dus alles onder ja eens hier
    wie werd altijd doch wordt wezen kunnen ons zelf tegen na reeds wil kon niets uw iemand
    geweest andere
"""
DUTCH_STOP_WORDS = frozenset(_DUTCH_STOP.split())

_ENGLISH_STOP = """
    i me my myself we our ours ourselves you your yours yourself yourselves he him his
    himself she her hers herself it its itself they them their theirs themselves what which
    who whom this that these those am is are was were be been being have has had having do
    does did doing a an the and but if or because as until while of at by for with about
    against between into through during before after above below to from up down in out on
    off over under again further then once here there when where why how all any both each
    few more most other some such no nor not only own same so than too very s t can will
    just don should now
"""
ENGLISH_STOP_WORDS = frozenset(_ENGLISH_STOP.split())
