"""The portal's one translation mechanism: every string a page shows comes from a catalogue.

How to use it (for anyone adding a page):

- Catalogues: `en.toml` and `nl.toml` beside this file, one table per page or part
  (`[home]`, `[nav]`, ...); a key is `table.name`, e.g. `home.title`. Add every new key to
  both files: `tests/test_i18n.py` fails on a key missing from one, on placeholders that
  differ, and on text in a template that does not go through `t`.
- Templates: `{{ t("home.title") }}`, with placeholders `{{ t("home.ends", date=d) }}` for
  `ends = "Ends {date}"` (str.format). Page titles are keys too: pass
  `title="home.title"` to `layout.page`.
- Numbers and dates: the `num` filter (`{{ x | num(1) }}`: 1,234.5 in English, 1.234,5 in
  Dutch) and `day` (`{{ d | day }}`).
- Python: `translate(lang, key, **params)`.

The language is the one the switch in the header chose (a cookie), else the first of the
browser's Accept-Language that the portal speaks, else English. A key missing from the
catalogue is an error (KeyError), never shown raw: the browser tests load every page.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from starlette.requests import Request

from fabriek.services.config_files import load_config_file

LANGUAGES = ("en", "nl")
DEFAULT_LANGUAGE = "en"
# Chosen with the switch; read by the server only (HttpOnly), for a year.
LANGUAGE_COOKIE = "fabriek_lang"


def catalogue_keys(table: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """A catalogue's tables as `table.name` keys and their text; ValueError on a value that
    is not text."""
    out: dict[str, str] = {}
    for name, value in table.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            out.update(catalogue_keys(value, key + "."))
        elif isinstance(value, str):
            out[key] = value
        else:
            raise ValueError(f"catalogue key {key} holds {type(value).__name__}, not text")
    return out


@cache
def catalogue(lang: str) -> dict[str, str]:
    """Every key of a language's catalogue and its text."""
    if lang not in LANGUAGES:
        raise ValueError(f"no catalogue for {lang!r}; the portal speaks {', '.join(LANGUAGES)}")
    # Read like every other TOML file of Fabriek, so that a broken catalogue is one line
    # naming the file and the fault.
    return load_config_file(None, f"{lang}.toml", "catalogue", catalogue_keys, package=__name__)


def translate(lang: str, key: str, **params: Any) -> str:
    """The text of `key` in `lang`, with `{placeholders}` filled in."""
    text = catalogue(lang)[key]
    return text.format(**params) if params else text


def _accepted(header: str) -> list[str]:
    """Languages of an Accept-Language header, most wanted first (q=0 dropped)."""
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if tag and q > 0:
            ranked.append((-q, i, tag.split("-")[0].lower()))
    return [tag for _, _, tag in sorted(ranked)]


def language_of(request: Request) -> str:
    """The language to answer `request` in (see the module)."""
    chosen = request.cookies.get(LANGUAGE_COOKIE, "")
    if chosen in LANGUAGES:
        return chosen
    for tag in _accepted(request.headers.get("accept-language", "")):
        if tag in LANGUAGES:
            return tag
    return DEFAULT_LANGUAGE


def format_number(value: float | int | None, lang: str, digits: int = 0) -> str:
    """A number as people of `lang` write it: 1,234.5 (en) or 1.234,5 (nl); '—' for None."""
    if value is None:
        return "—"
    text = f"{value:,.{digits}f}"
    if lang == "nl":
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return text


def format_day(moment: datetime | None, lang: str) -> str:
    """A date: 2025-03-01 in both languages (ISO 8601, unambiguous); '—' for None."""
    return moment.strftime("%Y-%m-%d") if moment is not None else "—"
