"""Pure rules of the OpenAI-compatible gateway: endpoint API keys' shape, the model name a
request gives, per-key limits in a fixed one-minute window, and OpenAI's error shape."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime

# An endpoint key: `fbe_<prefix>_<secret>`. The prefix is public (shown in lists, stored
# as is); only the SHA-256 of the whole key is stored. User tokens start `fbk_`.
KEY_START = "fbe_"
PREFIX_CHARS = 10


def hash_key(presented: str) -> str:
    """The stored form of an endpoint key (hex SHA-256 of the whole key)."""
    return hashlib.sha256(presented.encode()).hexdigest()


def is_endpoint_key(presented: str) -> bool:
    """Whether a bearer token has the shape of an endpoint key (not a member's token)."""
    return presented.startswith(KEY_START) and presented.count("_") >= 2


def parse_model(model: str) -> tuple[str | None, str]:
    """`PROJECT/ENDPOINT` or `ENDPOINT` (the key's own project) as (project, endpoint)."""
    project, slash, name = model.strip().rpartition("/")
    return (project or None) if slash else None, name


@dataclass(frozen=True, slots=True)
class ProjectRefusal:
    """Why a project's endpoints take no new request: the HTTP status, OpenAI's error
    `type` and `code`, and the words a caller can act on."""

    status: int
    type: str
    code: str
    message: str


@dataclass(frozen=True)
class KeyFacts:
    """What the gateway must know of a key on every request (cached in memory)."""

    key_id: int
    project_id: int
    endpoint_ids: frozenset[int] | None
    requests_per_minute: int | None
    tokens_per_minute: int | None
    tokens_per_month: int | None
    expires_at: datetime | None
    revoked: bool
    # Tokens used this month when the facts were read (the budget check adds the unflushed).
    month_tokens: int = 0

    def may_use(self, endpoint_id: int) -> bool:
        """Whether the key is scoped to this endpoint (None: all of its project's)."""
        return self.endpoint_ids is None or endpoint_id in self.endpoint_ids


@dataclass
class MinuteWindow:
    """Requests and tokens a caller used in the current one-minute window (fixed windows
    aligned to the minute: simple, at most twice the limit across a window's edge)."""

    minute: int = -1
    requests: int = 0
    tokens: int = 0

    def _roll(self, now_s: float) -> None:
        minute = int(now_s // 60)
        if minute != self.minute:
            self.minute, self.requests, self.tokens = minute, 0, 0

    def admit(
        self, now_s: float, requests_per_minute: int | None, tokens_per_minute: int | None
    ) -> float | None:
        """Count one request and return None, or the seconds until the next window when a
        limit is reached (the request is not counted then)."""
        self._roll(now_s)
        full = (requests_per_minute is not None and self.requests >= requests_per_minute) or (
            tokens_per_minute is not None and self.tokens >= tokens_per_minute
        )
        if full:
            return max(1.0, (self.minute + 1) * 60 - now_s)
        self.requests += 1
        return None

    def add_tokens(self, now_s: float, tokens: int) -> None:
        """Tokens a finished request used, counted in the window it ended in."""
        self._roll(now_s)
        self.tokens += tokens


@dataclass
class UsageDelta:
    """Usage not yet written, for one (endpoint, caller, day)."""

    requests: int = 0
    failed_requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, other: UsageDelta) -> None:
        self.requests += other.requests
        self.failed_requests += other.failed_requests
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens


@dataclass(frozen=True)
class UsageKey:
    """Where a request's usage is counted."""

    endpoint_id: int
    project_id: int
    caller: str
    key_id: int | None
    user_id: int | None
    day: date = field(compare=True)


def error_body(message: str, type_: str, code: str | None = None) -> bytes:
    """OpenAI's error shape: `{"error": {"message", "type", "code"}}`."""
    return json.dumps({"error": {"message": message, "type": type_, "code": code}}).encode()


def sse_error(message: str, type_: str = "upstream_error") -> bytes:
    """A server-sent event that ends a stream with an error in OpenAI's shape."""
    return b"data: " + error_body(message, type_) + b"\n\n"


def count_tokens(text: str) -> int:
    """A rough token count (whitespace-separated words) for when a server gives no usage."""
    return len(text.split())


def answer_words(answer: object) -> int:
    """A rough completion size of a non-streamed answer that reports no usage: the words of
    its choices' text (completions) or message content (chat)."""
    if not isinstance(answer, dict):
        return 0
    parts: list[str] = []
    for choice in answer.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        content = message.get("content") if isinstance(message, dict) else choice.get("text")
        if isinstance(content, str):
            parts.append(content)
    return count_tokens(" ".join(parts))
