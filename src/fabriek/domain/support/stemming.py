"""Stemming for full-text search: the Snowball Dutch stemmer, and the stop words of Dutch
and English.

SQLite's FTS5 has no Dutch stemmer (its `porter` tokenizer is English only), so for the
embedded store Fabriek stems Dutch text itself, with the same algorithm PostgreSQL's `dutch`
text-search configuration uses: the original Snowball Dutch stemmer by Martin Porter,
https://snowballstem.org/algorithms/dutch/stemmer.html, which Snowball 3 (and so the
`snowballstemmer` package) keeps as `dutch_porter` (its new `dutch` is another algorithm,
which PostgreSQL does not use). The text is stemmed before it is indexed and the query
before it is matched, so "rekentaken" finds "rekentaak" (both stem to "rekentak") and
"aanvragen" finds "aanvraag" ("aanvrag").

The stop words are Snowball's lists (the ones PostgreSQL's `dutch.stop` and
`english.stop` ship): words too common to say what a text is about.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from functools import lru_cache

import snowballstemmer

_WORD = re.compile(r"[^\W_]+")
# A Snowball stemmer keeps the word it works on in itself, so the server's worker threads
# each get their own.
_STEMMERS = threading.local()


@lru_cache(maxsize=65536)
def stem_dutch(word: str) -> str:
    """The Snowball Dutch stem of one word (lower-cased first, as both stores' parsers do)."""
    stemmer = getattr(_STEMMERS, "dutch", None)
    if stemmer is None:
        stemmer = _STEMMERS.dutch = snowballstemmer.stemmer("dutch_porter")
    stem: str = stemmer.stemWord(word.lower())
    return stem


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
