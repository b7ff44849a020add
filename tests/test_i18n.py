"""The portal's one translation mechanism: both languages complete, every template string
through it, the language chosen as people expect."""

from __future__ import annotations

import re
import string
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fabriek.domain.errors import InvalidInput
from fabriek.services.config_files import load_config_file
from fabriek.web import i18n
from fabriek.web.i18n import LANGUAGES, catalogue, format_number
from tests.conftest import Client
from tests.servers import LiveServer

TEMPLATES = Path(i18n.__file__).resolve().parents[1] / "templates"
# Words a template may show as they are: names, not language.
AS_IS = {"Fabriek", "PUE", "UTC", "fbk_"}
# Attributes people read (or hear) as text.
READ_ATTRIBUTES = {"alt", "title", "placeholder", "aria-label", "aria-description"}


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_key_is_in_every_language_with_the_same_placeholders() -> None:
    english = catalogue("en")
    for lang in LANGUAGES:
        other = catalogue(lang)
        assert set(other) == set(english), (
            f"{lang}: missing {sorted(set(english) - set(other))}, "
            f"extra {sorted(set(other) - set(english))}"
        )
        for key, text in other.items():
            assert text.strip(), f"{lang}: {key} is empty"
            assert placeholders(text) == placeholders(english[key]), f"{lang}: {key}"


def test_a_catalogue_is_read_by_the_one_toml_loader(tmp_path: Path) -> None:
    """The catalogues are read like every configuration file: a broken one is one line
    naming the file and the key, never a bare traceback."""
    shipped = load_config_file(None, "nl.toml", "catalogue", dict, package=i18n.__name__)
    assert i18n.catalogue_keys(shipped) == catalogue("nl")
    path = tmp_path / "nl.toml"
    path.write_text("[home]\ntitle = 3\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match=r"nl.toml: catalogue key home.title holds int"):
        load_config_file(path, "nl.toml", "catalogue", i18n.catalogue_keys)


class _Text(HTMLParser):
    """The text a template shows outside its {{ }} and {% %}: what a person would read."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"script", "style", "code", "pre"}:
            self.skip += 1
        self.found.extend(v for k, v in attrs if k in READ_ATTRIBUTES and v)

    def handle_endtag(self, tag: str) -> None:
        if tag in {"script", "style", "code", "pre"}:
            self.skip -= 1

    def handle_data(self, data: str) -> None:
        # A macro may write attributes outside any tag (` aria-invalid="true"`): not text.
        if not self.skip:
            self.found.append(re.sub(r'[\w-]+="[^"]*"', " ", data))


def untranslated(source: str) -> list[str]:
    """Words of a template that do not come from the catalogue."""
    bare = re.sub(r"\{#.*?#\}|\{\{.*?\}\}|\{%.*?%\}", " ", source, flags=re.S)
    parser = _Text()
    parser.feed(bare)
    words = re.findall(r"[^\W\d_][\w'-]*", " ".join(parser.found))
    return [w for w in words if w not in AS_IS]


def test_every_template_string_goes_through_the_catalogue() -> None:
    templates = sorted(TEMPLATES.glob("*.html"))
    assert len(templates) >= 8
    found = {t.name: untranslated(t.read_text(encoding="utf-8")) for t in templates}
    assert not {name: words for name, words in found.items() if words}, (
        "text in templates that does not go through t(): put it in web/i18n/en.toml and nl.toml"
    )


def test_the_check_finds_text_outside_the_catalogue() -> None:
    assert untranslated('<p title="Hello">{{ t("a.b") }} world</p>') == ["Hello", "world"]
    assert untranslated('<p>{{ t("a.b") }}</p><code>fabriek login</code>') == []


def test_every_key_a_template_names_exists() -> None:
    english = catalogue("en")
    named: set[str] = set()
    for template in TEMPLATES.glob("*.html"):
        # Whole keys only: t("state." ~ j.state) builds its key as it goes.
        named |= set(re.findall(r"""\bt\(\s*["']([a-z_]+\.[a-z0-9_-]+)["']\s*[,)]""",
                                template.read_text()))  # fmt: skip
    assert named and not sorted(named - set(english))


@given(st.floats(min_value=-1e12, max_value=1e12, allow_nan=False), st.integers(0, 3))
def test_numbers_read_the_same_in_both_languages(value: float, digits: int) -> None:
    english, dutch = format_number(value, "en", digits), format_number(value, "nl", digits)
    assert english.replace(",", "") == dutch.replace(".", "").replace(",", ".")


def test_the_language_comes_from_the_switch_then_the_browser(
    server: LiveServer, client: Client
) -> None:
    dutch_browser = {"Accept-Language": "de-DE,nl;q=0.8,en;q=0.5"}
    assert 'lang="nl"' in client().get("/", headers=dutch_browser).text
    assert 'lang="en"' in client().get("/", headers={"Accept-Language": "fr, de"}).text
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        switched = browser.post("/language", data={"lang": "en", "next": "/signin"})
        assert switched.status_code == 303 and switched.headers["location"] == "/signin"
        page = browser.get("/signin", headers=dutch_browser).text
        assert 'lang="en"' in page and "Sign in" in page
        browser.post("/language", data={"lang": "nl", "next": "/"})
        assert "Inloggen" in browser.get("/signin").text
        # Anything else is ignored, and it never sends anyone off the site.
        odd = browser.post("/language", data={"lang": "xx", "next": "//evil.example/"})
        assert odd.headers["location"] == "/" and 'lang="nl"' in browser.get("/").text
