"""The knowledge base: help articles in Dutch and English, and what a search finds. The
shapes the services and the API exchange; no I/O."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Language(StrEnum):
    """The languages articles are written in; each is searched with its own stemmer."""

    NL = "nl"
    EN = "en"


class Suggestion(BaseModel):
    """An article a search or a ticket's text brought up: `snippet` is the passage that
    matched, with the matching words in **bold**; a higher `score` ranks first."""

    model_config = ConfigDict(frozen=True)

    id: int
    slug: str
    title: str
    language: Language
    snippet: str
    score: float = Field(description="relevance as the store ranks it: compare within a language")


class Article(BaseModel):
    """One article as readers get it."""

    id: int
    slug: str
    language: Language
    title: str
    body: str = Field(description="Markdown")
    links: list[str]
    translation: str | None
    created_at: datetime
    updated_at: datetime
    updated_by: str


class SuggestionQuery(BaseModel):
    """The text a user is writing (a ticket, a question): articles are suggested for it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(max_length=20_000)
    language: Language | None = None
    limit: int = Field(default=5, ge=1, le=20)


class ArticleSummary(BaseModel):
    """An article in a listing: what it is, without its body."""

    id: int
    slug: str
    language: Language
    title: str
    translation: str | None
    updated_at: datetime


_SLUG = r"^[a-z0-9]+(-[a-z0-9]+)*$"
# Where an article may point: a page of Fabriek's docs (docs/access.md#tracks) or the web.
_LINK = re.compile(r"^(docs/[a-z0-9][a-z0-9-]*\.md(#[a-z0-9-]+)?|https://\S+)$")
MAX_BODY_CHARS = 100_000


def _links(values: list[str]) -> list[str]:
    cleaned: list[str] = []
    for value in values:
        link = value.strip()
        if not _LINK.match(link):
            raise ValueError(
                f"{value!r} is not a link to the docs (docs/page.md or docs/page.md#section) "
                "or an https:// address"
            )
        if link not in cleaned:
            cleaned.append(link)
    return cleaned


def _text(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


class ArticleDraft(BaseModel):
    """A new article (hub staff, admins)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    slug: str = Field(min_length=2, max_length=80, pattern=_SLUG, description="e.g. submit-a-job")
    language: Language
    title: str = Field(min_length=2, max_length=200)
    body: str = Field(min_length=1, max_length=MAX_BODY_CHARS, description="Markdown")
    links: list[str] = Field(default_factory=list, max_length=20)
    translation: str | None = Field(
        default=None, max_length=80, description="slug of the same article in the other language"
    )

    @field_validator("links")
    @classmethod
    def _check_links(cls, value: list[str]) -> list[str]:
        return _links(value)

    @field_validator("title", "body")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        return _text(value)


class ArticlePatch(BaseModel):
    """Changes to an article; what is left out stays as it is (its slug and language stay)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str | None = Field(default=None, min_length=2, max_length=200)
    body: str | None = Field(default=None, min_length=1, max_length=MAX_BODY_CHARS)
    links: list[str] | None = Field(default=None, max_length=20)
    translation: str | None = Field(default=None, max_length=80)

    @field_validator("links")
    @classmethod
    def _check_links(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _links(value)

    @field_validator("title", "body")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        return None if value is None else _text(value)


# -- snippets ------------------------------------------------------------------------------------

_MARKDOWN_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_MARKUP = re.compile(r"[#*_`>|]+")


def plain_text(markdown: str) -> str:
    """The words of a Markdown text without its markup, on one line: links keep their text."""
    text = _MARKDOWN_LINK.sub(r"\1", markdown)
    text = _MARKUP.sub(" ", text)
    return " ".join(text.split())


def snippet(markdown: str, matches: Callable[[str], bool], width: int = 24) -> str:
    """The passage of `width` words with the most words that `matches` accepts (the first
    such), those words in **bold**; '…' marks text left out at either end."""
    tokens = plain_text(markdown).split(" ")
    if not tokens or tokens == [""]:
        return ""
    hits = [matches(token) for token in tokens]
    best, best_count = 0, -1
    count = sum(hits[:width])
    for start in range(max(1, len(tokens) - width + 1)):
        if start > 0:
            count += hits[start + width - 1] - hits[start - 1]
        if count > best_count:
            best, best_count = start, count
    window = [
        f"**{token}**" if hit else token
        for token, hit in zip(tokens[best : best + width], hits[best : best + width], strict=True)
    ]
    head = "… " if best > 0 else ""
    tail = " …" if best + width < len(tokens) else ""
    return head + " ".join(window) + tail
