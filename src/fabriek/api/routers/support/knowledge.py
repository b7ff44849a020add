"""The knowledge base: full-text search (Dutch and English word forms), suggestions for a
text being written, and articles (written by hub staff and admins)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from fabriek.api.context import Caller, Ctx, Db
from fabriek.api.routers import API_PREFIX
from fabriek.api.schemas import PageOut, paging
from fabriek.domain.support.knowledge import (
    Article,
    ArticleDraft,
    ArticlePatch,
    ArticleSummary,
    Suggestion,
    SuggestionQuery,
)
from fabriek.services.paging import PageRequest
from fabriek.services.support import knowledge

router = APIRouter(prefix=f"{API_PREFIX}/kb", tags=["knowledge base"])

Lang = Annotated[str | None, Query(description="nl or en; default both")]


@router.get("/search", response_model=list[Suggestion])
def search(
    db: Db,
    who: Caller,
    q: Annotated[str, Query(max_length=1000, description="words to find, in any form")],
    lang: Lang = None,
    limit: Annotated[int, Query(ge=1, le=knowledge.MAX_RESULTS)] = 10,
) -> list[Suggestion]:
    """Articles containing every word asked (stemmed by each article's language), best
    first, with the passage that matched."""
    return knowledge.search(db, q, lang, limit)


@router.post("/suggestions", response_model=list[Suggestion])
def suggest(body: SuggestionQuery, db: Db, who: Caller) -> list[Suggestion]:
    """Articles for a text being written (a ticket): any of its words counts."""
    return knowledge.suggest(db, body.text, body.language, body.limit)


@router.get("/articles", response_model=PageOut[ArticleSummary])
def list_articles(
    db: Db, who: Caller, page: Annotated[PageRequest, Depends(paging)], lang: Lang = None
) -> PageOut[ArticleSummary]:
    return PageOut.of(knowledge.list_articles(db, page, lang))


@router.post("/articles", response_model=Article, status_code=status.HTTP_201_CREATED)
def create_article(body: ArticleDraft, db: Db, who: Caller, ctx: Ctx) -> Article:
    """Write an article (hub staff, admins)."""
    return knowledge.create_article(db, who, body, ctx.clock())


@router.get("/articles/{slug}", response_model=Article)
def get_article(slug: str, db: Db, who: Caller) -> Article:
    return knowledge.get_article(db, slug)


@router.patch("/articles/{slug}", response_model=Article)
def update_article(slug: str, body: ArticlePatch, db: Db, who: Caller, ctx: Ctx) -> Article:
    """Change an article's title, body, links or translation (hub staff, admins)."""
    return knowledge.update_article(db, who, slug, body, ctx.clock())
