"""E-mail of the support centre, the pure parts: the reply address that carries a ticket's
token, finding that token in a reply, keeping what the person wrote (not the quoted mail
below it), and telling automatic mail (bounces, out-of-office) from a person's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Final

from fabriek.domain.support.tickets import ticket_reference

# T42-0123456789abcdef: a ticket's number and its reply key (16 hex digits, 64 bits), so a
# reply address cannot be guessed from a ticket number.
_TOKEN: Final = re.compile(r"(?<![0-9A-Za-z])T(\d{1,12})-([0-9a-f]{16})(?![0-9A-Za-z])", re.I)
KEY_HEX_DIGITS: Final = 16


@dataclass(frozen=True)
class ReplyToken:
    ticket_id: int
    key: str

    def __str__(self) -> str:
        return f"{ticket_reference(self.ticket_id)}-{self.key}"


def reply_address(support_address: str, token: ReplyToken) -> str:
    """`support+T42-<key>@factory.example` for `support@factory.example`: replies to it
    reach the support mailbox and carry the ticket's token."""
    local, _, domain = support_address.rpartition("@")
    if not local or not domain:
        raise ValueError(f"{support_address!r} is not an e-mail address (local@domain)")
    return f"{local.split('+', 1)[0]}+{token}@{domain}"


def subject_with_token(subject: str, token: ReplyToken) -> str:
    """A subject that still names the ticket when a mail client drops the reply address."""
    return f"[{token}] {' '.join(subject.split())}"


def find_tokens(addresses: Iterable[str], subject: str) -> list[ReplyToken]:
    """The tokens a message carries: those in its recipients' addresses first, then those
    in its subject; each once, in that order."""
    found: list[ReplyToken] = []
    for text in [*addresses, subject]:
        for match in _TOKEN.finditer(text or ""):
            token = ReplyToken(int(match.group(1)), match.group(2).lower())
            if token not in found:
                found.append(token)
    return found


# Where quoted mail begins: attribution lines in English and Dutch mail clients, Outlook's
# separators. Everything from such a line on is the earlier message.
_QUOTE_STARTS: Final = (
    re.compile(r"^\s*On\b.{0,300}\bwrote:\s*$", re.I),
    re.compile(r"^\s*Op\b.{0,300}\b(schreef|heeft)\b.{0,100}:\s*$", re.I),
    re.compile(
        r"^\s*-{2,}\s*(Original Message|Oorspronkelijk bericht|Forwarded message|Doorgestuurd bericht)\s*-{2,}\s*$",
        re.I,
    ),
    re.compile(r"^\s*_{10,}\s*$"),
    re.compile(r"^\s*(From|Van):\s.+$"),
)


def strip_quoted(text: str) -> str:
    """What the person wrote above the mail they replied to: without quoted lines (`> ...`),
    the attribution line and everything after it, and their signature (after `-- `)."""
    kept: list[str] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line.rstrip() == "--" or line == "-- ":
            break
        if any(p.match(line) for p in _QUOTE_STARTS):
            break
        if line.lstrip().startswith(">"):
            continue
        kept.append(line.rstrip())
    return "\n".join(kept).strip()


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"script", "style", "head"}:
            self._skip += 1
        elif tag in {"br", "p", "div", "li", "tr", "blockquote"}:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in {"script", "style", "head"} and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """The readable text of an HTML mail body (for mail clients that send no plain part)."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


_AUTOMATIC_SENDERS: Final = ("mailer-daemon@", "postmaster@", "noreply@", "no-reply@")


def is_automatic(headers: Mapping[str, str], sender: str) -> str | None:
    """Why a message is automatic mail that must get no bounce (a bounce, an out-of-office
    reply, a list), or None for a person's mail. Answering these could loop forever."""
    auto = headers.get("auto-submitted", "").strip().lower()
    if auto and auto != "no":
        return f"it is automatic mail (Auto-Submitted: {auto})"
    precedence = headers.get("precedence", "").strip().lower()
    if precedence in {"bulk", "junk", "list", "auto_reply"}:
        return f"it is bulk or list mail (Precedence: {precedence})"
    if headers.get("return-path", "").strip() == "<>":
        return "it has no return path (a delivery report)"
    if not sender:
        return "it names no sender to answer"
    if sender.lower().startswith(_AUTOMATIC_SENDERS):
        return f"it comes from {sender}, an automatic sender"
    return None
