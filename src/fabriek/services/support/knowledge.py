"""The knowledge base: articles in Dutch and English, and full-text search over them.

One interface, two implementations chosen by the store's dialect:

- PostgreSQL: each article's generated `search` tsvector (the 'dutch' or 'english'
  configuration by the article's language, title weighted above body; GIN index), queried
  with `to_tsquery` in the article's configuration, ranked by `ts_rank`, the passage by
  `ts_headline`.
- SQLite: FTS5 tables `kb_search_nl` and `kb_search_en`, rowid = the article's id. FTS5
  has no Dutch stemmer, so Dutch text is stemmed here with the Snowball Dutch stemmer
  (`fabriek.domain.support.stemming`) before it is stored, and so is the query; English uses FTS5's
  porter tokenizer. Ranked by `bm25`.

Either way a query is matched against every article in that article's language (so a
query in no particular language finds Dutch and English articles alike), stop words are
dropped, and `search` needs every remaining word while `suggest` (for a ticket's text)
takes any of them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from fabriek.domain.errors import Forbidden, InvalidInput, NotFound
from fabriek.domain.roles import Principal, Role
from fabriek.domain.support.knowledge import (
    Article,
    ArticleDraft,
    ArticlePatch,
    ArticleSummary,
    Language,
    Suggestion,
    snippet,
)
from fabriek.domain.support.stemming import DUTCH_STOP_WORDS, ENGLISH_STOP_WORDS, stem_dutch, words
from fabriek.services import audit
from fabriek.services.paging import Page, PageRequest, fetch_page
from fabriek.services.transactions import commit
from fabriek.store.tables import ArticleRow, UserRow

MAX_RESULTS = 50
# A ticket's text can be long: its first distinct words are enough to suggest articles, and
# bound the query's cost.
MAX_TERMS = 64
_STOP = {Language.NL: DUTCH_STOP_WORDS, Language.EN: ENGLISH_STOP_WORDS}
_PG_CONFIG = {Language.NL: "dutch", Language.EN: "english"}
_FTS_TABLE = {Language.NL: "kb_search_nl", Language.EN: "kb_search_en"}
# Snippets mark the words that matched as Markdown bold, on both stores.
_HEADLINE = "StartSel=**, StopSel=**, MaxWords=30, MinWords=15, MaxFragments=1"


# -- who may write -------------------------------------------------------------------------------


def may_edit(who: Principal) -> bool:
    """Hub staff (the support desks) and admins write the knowledge base."""
    return who.is_admin or who.has_role(Role.HUB_STAFF)


def _require_editor(who: Principal) -> None:
    if not may_edit(who):
        raise Forbidden("only hub staff and admins may write knowledge-base articles")


# -- the full-text index -------------------------------------------------------------------------


def _language(value: Language | str | None) -> Language | None:
    if value is None or isinstance(value, Language):
        return value
    try:
        return Language(value.strip().lower())
    except ValueError:
        known = ", ".join(lang.value for lang in Language)
        raise InvalidInput.on("lang", f"no language {value!r}; known: {known}") from None


def terms(query: str, language: Language) -> list[str]:
    """The words of a query that count in `language`: without its stop words, Dutch ones
    stemmed (as SQLite's index holds them), each once, in order."""
    found: list[str] = []
    for word in words(query):
        if word in _STOP[language]:
            continue
        term = stem_dutch(word) if language is Language.NL else word
        if term not in found:
            found.append(term)
    return found


def _dutch_index_text(value: str) -> str:
    return " ".join(stem_dutch(w) for w in words(value) if w not in DUTCH_STOP_WORDS)


def _is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def _index(session: Session, row: ArticleRow) -> None:
    """Put the article (again) into SQLite's index of its language; PostgreSQL keeps its
    generated column itself."""
    if not _is_sqlite(session):
        return
    for table in _FTS_TABLE.values():
        session.execute(text(f"DELETE FROM {table} WHERE rowid = :id"), {"id": row.id})
    language = Language(row.language)
    title, body = row.title, row.body
    if language is Language.NL:
        title, body = _dutch_index_text(title), _dutch_index_text(body)
    session.execute(
        text(f"INSERT INTO {_FTS_TABLE[language]} (rowid, title, body) VALUES (:id, :t, :b)"),
        {"id": row.id, "t": title, "b": body},
    )


def _search_postgresql(
    session: Session, language: Language, words_: list[str], any_word: bool, limit: int
) -> list[Suggestion]:
    config = _PG_CONFIG[language]
    # Only letters and digits reach to_tsquery (see `words`), so nothing in them is syntax.
    query = (" | " if any_word else " & ").join(words_)
    rows = session.execute(
        text(
            "SELECT a.id, a.slug, a.title, ts_rank(a.search, q) AS score, "
            "ts_headline(CAST(:config AS regconfig), a.body, q, :headline) AS passage "
            "FROM kb_articles a, to_tsquery(CAST(:config AS regconfig), :query) q "
            "WHERE a.language = :language AND a.search @@ q "
            "ORDER BY score DESC, a.id LIMIT :limit"
        ),
        {"config": config, "query": query, "language": language.value, "limit": limit,
         "headline": _HEADLINE},
    ).all()  # fmt: skip
    return [
        Suggestion(id=r.id, slug=r.slug, title=r.title, language=language,
                   snippet=" ".join(r.passage.split()), score=round(float(r.score), 6))
        for r in rows
    ]  # fmt: skip


def _search_sqlite(
    session: Session, language: Language, query_terms: list[str], any_word: bool, limit: int
) -> list[Suggestion]:
    table = _FTS_TABLE[language]
    # Each term quoted: an FTS5 string, never an operator (terms are letters and digits).
    match = (" OR " if any_word else " AND ").join(f'"{t}"' for t in query_terms)
    passage = f"snippet({table}, 1, '**', '**', '…', 24)"
    rows = session.execute(
        text(
            f"SELECT a.id, a.slug, a.title, a.body, -bm25({table}, 4.0, 1.0) AS score, "
            f"{passage} AS passage FROM {table} JOIN kb_articles a ON a.id = {table}.rowid "
            f"WHERE {table} MATCH :match ORDER BY score DESC, a.id LIMIT :limit"
        ),
        {"match": match, "limit": limit},
    ).all()
    wanted = set(query_terms)

    def matches(token: str) -> bool:
        return any(stem_dutch(w) in wanted for w in words(token))

    def passage_of(body: str, passage: str) -> str:
        # The Dutch index holds stems, so its passages are cut from the article itself.
        if language is Language.NL:
            return snippet(body, matches)
        return " ".join(passage.split())

    return [
        Suggestion(id=r.id, slug=r.slug, title=r.title, language=language,
                   snippet=passage_of(r.body, r.passage), score=round(float(r.score), 6))
        for r in rows
    ]  # fmt: skip


def _find(
    session: Session,
    query: str,
    language: Language | str | None,
    limit: int,
    any_word: bool,
) -> list[Suggestion]:
    chosen = _language(language)
    limit = max(1, min(limit, MAX_RESULTS))
    found: list[Suggestion] = []
    for lang in [chosen] if chosen else list(Language):
        query_terms = terms(query, lang)[:MAX_TERMS]
        if not query_terms:
            continue
        if _is_sqlite(session):
            found += _search_sqlite(session, lang, query_terms, any_word, limit)
        else:
            plain = list(dict.fromkeys(w for w in words(query) if w not in _STOP[lang]))
            found += _search_postgresql(session, lang, plain[:MAX_TERMS], any_word, limit)
    found.sort(key=lambda s: (-s.score, s.id))
    return found[:limit]


def search(
    session: Session, query: str, language: Language | str | None = None, limit: int = 10
) -> list[Suggestion]:
    """The articles that contain every word of `query` (in any of its forms: stemmed by
    the article's language; stop words do not count), best first; in `language` only, if
    given."""
    if not query.strip():
        raise InvalidInput.on("q", "say what to search for")
    return _find(session, query, language, limit, any_word=False)


def suggest(
    session: Session, text: str, language: Language | str | None = None, limit: int = 5
) -> list[Suggestion]:
    """The articles that best match a ticket's text, best first: any of its words counts,
    articles with more (and rarer) ones rank higher. An empty text suggests nothing."""
    return _find(session, text, language, limit, any_word=True)


# -- articles ------------------------------------------------------------------------------------


def _usernames(session: Session, ids: set[int]) -> dict[int, str]:
    return dict(
        session.execute(select(UserRow.id, UserRow.username).where(UserRow.id.in_(ids))).all()
    )


def _view(session: Session, row: ArticleRow) -> Article:
    return Article(
        id=row.id, slug=row.slug, language=Language(row.language), title=row.title,
        body=row.body, links=list(row.links or []), translation=row.translation,
        created_at=row.created_at, updated_at=row.updated_at,
        updated_by=_usernames(session, {row.updated_by}).get(row.updated_by, "?"),
    )  # fmt: skip


def _row(session: Session, slug: str) -> ArticleRow:
    row = session.scalar(select(ArticleRow).where(ArticleRow.slug == slug))
    if row is None:
        raise NotFound("article", slug)
    return row


def _link_translation(
    session: Session, slug: str, language: Language, translation: str | None
) -> None:
    """Check that `translation` names an article in the other language; link that one
    back to `slug` when it names no translation yet."""
    if translation is None:
        return
    other = session.scalar(select(ArticleRow).where(ArticleRow.slug == translation))
    if other is None:
        raise InvalidInput.on("translation", f"no article {translation!r}; write that one first")
    if other.slug == slug or Language(other.language) is language:
        raise InvalidInput.on(
            "translation",
            f"{translation!r} is in {other.language}: a translation is in the other language",
        )
    if other.translation is None:
        other.translation = slug


def get_article(session: Session, slug: str) -> Article:
    return _view(session, _row(session, slug))


def list_articles(
    session: Session, page: PageRequest, language: Language | str | None = None
) -> Page[ArticleSummary]:
    """Every article, in `language` only if given, by title."""
    chosen = _language(language)
    query = select(ArticleRow).order_by(ArticleRow.title, ArticleRow.id)
    if chosen:
        query = query.where(ArticleRow.language == chosen.value)
    rows, total = fetch_page(session, query, page)
    items = [
        ArticleSummary(id=r.id, slug=r.slug, language=Language(r.language), title=r.title,
                       translation=r.translation, updated_at=r.updated_at)
        for r in rows
    ]  # fmt: skip
    return Page(items, total, page.limit, page.offset)


def add_article(session: Session, author_id: int, draft: ArticleDraft, now: datetime) -> ArticleRow:
    """Write an article and its index entry into the session (the caller commits)."""
    row = ArticleRow(
        slug=draft.slug, language=draft.language.value, title=draft.title, body=draft.body,
        links=list(draft.links), translation=draft.translation, created_by=author_id,
        updated_by=author_id, created_at=now, updated_at=now,
    )  # fmt: skip
    session.add(row)
    session.flush()
    _index(session, row)
    return row


def create_article(session: Session, who: Principal, draft: ArticleDraft, now: datetime) -> Article:
    """A new article (hub staff, admins); its slug is unique across both languages."""
    _require_editor(who)
    if session.scalar(select(ArticleRow.id).where(ArticleRow.slug == draft.slug)):
        raise InvalidInput.on("slug", f"{draft.slug!r} is taken; choose another")
    _link_translation(session, draft.slug, draft.language, draft.translation)
    row = add_article(session, who.user_id, draft, now)
    audit.record_admin(session, who, now, "article-add", target=f"article {row.slug}")
    commit(session, f"an article {draft.slug!r} was written meanwhile; choose another slug")
    return _view(session, row)


def update_article(
    session: Session, who: Principal, slug: str, patch: ArticlePatch, now: datetime
) -> Article:
    """Change an article's title, body, links or translation (hub staff, admins)."""
    row = _row(session, slug)
    _require_editor(who)
    changes = patch.model_dump(exclude_unset=True)
    if "translation" in changes:
        _link_translation(session, row.slug, Language(row.language), patch.translation)
    for name in ("title", "body", "links"):
        value = changes.get(name)
        if value is not None:
            setattr(row, name, list(value) if name == "links" else value)
    if "translation" in changes:
        row.translation = patch.translation
    row.updated_by, row.updated_at = who.user_id, now
    session.flush()
    _index(session, row)
    audit.record_admin(
        session, who, now, "article-change", target=f"article {row.slug}", fields=sorted(changes)
    )
    commit(session, "the article changed meanwhile; try again")
    return _view(session, row)
