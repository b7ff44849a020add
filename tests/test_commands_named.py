"""Every `fabriek ...` command that help texts, messages and the docs tell a user to type
exists: a newcomer who copies one gets that command, not 'No such command'."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from fabriek.main import main

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "fabriek"

# `fabriek` followed by words: a command in English text (the Dutch word means factory, so
# Dutch text is read only where a command stands out: in backticks or starting a line).
_ANY = re.compile(r"(?<![\w.-])fabriek((?: [a-z][a-z0-9-]*(?=[\s`'\")]|$))+)")
_SET_OFF = re.compile(r"(?:^|`|\n\s*)fabriek((?: [a-z][a-z0-9-]*(?=[\s`'\")]|$))+)")


def _strings(path: Path) -> Iterator[str]:
    """Every string literal of a Python module: help texts, docstrings, messages."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value


def _texts() -> Iterator[tuple[str, str, re.Pattern[str]]]:
    for path in sorted(SRC.rglob("*.py")):
        for text in _strings(path):
            yield str(path.relative_to(ROOT)), text, _ANY
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        yield str(path.relative_to(ROOT)), path.read_text(), _ANY
    for path in sorted(SRC.rglob("*.toml")):
        english = path.name == "en.toml"
        yield str(path.relative_to(ROOT)), path.read_text(), _ANY if english else _SET_OFF


def named_commands() -> dict[tuple[str, ...], set[str]]:
    """Each command named (`("data", "push")`, with any arguments after it) and where."""
    found: dict[tuple[str, ...], set[str]] = {}
    for where, text, mention in _texts():
        for match in mention.finditer(text):
            found.setdefault(tuple(match.group(1).split()), set()).add(where)
    return found


NAMED = named_commands()


def test_the_docs_name_commands_at_all() -> None:
    assert ("run",) in NAMED and ("data", "push") in NAMED and ("login",) in NAMED


@pytest.mark.parametrize("words", sorted(NAMED), ids=" ".join)
def test_every_named_command_exists(
    words: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    # Asking for its help runs nothing; extra words are the command's arguments.
    try:
        main([*words, "--help"])
        code: object = 0
    except SystemExit as ended:
        code = ended.code
    shown = capsys.readouterr()
    assert code in (0, None), (
        f"`fabriek {' '.join(words)}` (named in {', '.join(sorted(NAMED[words]))}) "
        f"does not exist: {shown.err.strip()}"
    )
