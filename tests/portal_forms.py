"""For portal tests over plain HTTP: the problem a form shows next to a field, and the type
of the `browser` fixture (tests/conftest.py): people signed in by the portal's cookie."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx

Browser = Callable[[str], httpx.Client]


def field_error(html: str, name: str) -> str:
    """The problem shown next to field `name` (empty when there is none)."""
    found = re.search(rf'id="f-{re.escape(name)}-error"[^>]*>(.*?)</p>', html, re.S)
    if found is None:
        return ""
    return re.sub(r"<[^>]+>", "", found.group(1)).replace("&#39;", "'").strip()
