"""`fabriek kb`: search the knowledge base (Dutch and English word forms) and read it."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape

from fabriek.cli.app import JsonFlag, app
from fabriek.cli.connection import client
from fabriek.cli.output import console, print_json, print_table

kb_app = typer.Typer(help="The knowledge base: search and read articles.", no_args_is_help=True)
app.add_typer(kb_app, name="kb")

LangOpt = Annotated[str | None, typer.Option("--lang", help="nl or en; default both")]


@kb_app.command("search")
def search(
    query: Annotated[str, typer.Argument(help="words to find, in any form")],
    lang: LangOpt = None,
    limit: Annotated[int, typer.Option(min=1, max=50, help="articles to show")] = 10,
    as_json: JsonFlag = False,
) -> None:
    """Articles containing every word, best first, with the passage that matched."""
    with client() as c:
        found = c.support.search_articles(query, lang, limit)
    if as_json:
        print_json(found)
        return
    if not found:
        console.print(f"no article matches {query!r}", markup=False)
    for hit in found:
        console.print(
            f"[bold]{escape(hit.title)}[/] ({hit.language.value})  fabriek kb show {escape(hit.slug)}"
        )
        console.print(f"   {hit.snippet}", markup=False, highlight=False)


@kb_app.command("show")
def show(
    slug: Annotated[str, typer.Argument(help="the article's slug")], as_json: JsonFlag = False
) -> None:
    """An article, as Markdown."""
    with client() as c:
        article = c.support.article(slug)
    if as_json:
        print_json(article)
        return
    text = f"# {article.title}\n\n{article.body.strip()}\n"
    if article.links:
        text += "\nSee also: " + ", ".join(article.links) + "\n"
    if article.translation:
        text += f"Translation: fabriek kb show {article.translation}\n"
    sys.stdout.write(text)


@kb_app.command("list")
def list_articles(lang: LangOpt = None, as_json: JsonFlag = False) -> None:
    """Every article, by title."""
    with client() as c:
        found = c.support.articles(limit=1000, lang=lang)
    if as_json:
        print_json(found.items)
        return
    rows = [(a.slug, a.language.value, a.title, a.translation or "-") for a in found.items]
    print_table("Knowledge base", ["Slug", "Lang", "Title", "Translation"], rows)
