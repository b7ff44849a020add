"""What a ticket's attachment may be: its declared type among the allowed ones, its first
bytes fitting that type, and a file name fit to show."""

from __future__ import annotations

from typing import Final

DEFAULT_ATTACHMENT_TYPES: Final = (
    "text/plain",
    "text/markdown",
    "text/csv",
    "application/json",
    "application/pdf",
    "image/png",
    "image/jpeg",
)
# What the first bytes of a file of each type look like: a file must be what it says.
_SIGNATURES: Final = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
}
_TEXT_TYPES: Final = frozenset({"application/json", "application/x-yaml", "application/yaml"})


def is_text_type(media_type: str) -> bool:
    return media_type.startswith("text/") or media_type in _TEXT_TYPES


def media_type_of(header: str | None) -> str:
    """The bare media type of a Content-Type value (`text/plain; charset=utf-8` → text/plain)."""
    return (header or "").split(";", 1)[0].strip().lower()


def parse_media_types(text: str) -> frozenset[str]:
    """A comma-separated list of media types, as the setting holds it."""
    return frozenset(t for t in (media_type_of(p) for p in text.split(",")) if t)


def check_attachment_type(media_type: str, allowed: frozenset[str]) -> str | None:
    """Why a declared type is refused, or None when it is allowed."""
    if not media_type:
        return "say what kind of file it is (its Content-Type), e.g. text/plain"
    if media_type not in allowed:
        return f"files of type {media_type} are not accepted; allowed: {', '.join(sorted(allowed))}"
    return None


def check_attachment_start(media_type: str, head: bytes) -> str | None:
    """Why a file's first bytes do not fit its declared type, or None when they do (text is
    checked as a whole by the caller; here only for NUL bytes, which text never holds)."""
    signatures = _SIGNATURES.get(media_type)
    if signatures is not None and not head.startswith(signatures):
        return f"the file does not look like {media_type} (its first bytes say otherwise)"
    if is_text_type(media_type) and b"\x00" in head:
        return f"the file does not look like {media_type}: it holds binary data"
    return None


def safe_filename(name: str) -> str:
    """A file name fit to show and to offer as a download: no directories, no control or
    quoting characters, at most 200 characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(ch for ch in base if ch.isprintable() and ch not in '"<>|:*?').strip(" .")
    return cleaned[:200] or "attachment"
