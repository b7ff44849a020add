"""Reading a replica's server-sent events as they pass: the usage they report, the tokens
they carry, and the extra usage chunk the gateway asked for (dropped when the client did
not ask for it). Events are passed on one by one, never gathered."""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass
class StreamTally:
    """What a stream reported or carried so far."""

    keep_usage_chunk: bool
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    chunks_with_text: int = 0
    done: bool = False
    _buffer: bytes = field(default=b"", repr=False)

    def feed(self, data: bytes) -> bytes:
        """The complete events in `data` (with what was held back before) to pass on now."""
        self._buffer += data
        out: list[bytes] = []
        while True:
            end = self._buffer.find(b"\n\n")
            if end < 0:
                break
            event, self._buffer = self._buffer[: end + 2], self._buffer[end + 2 :]
            if self._read(event):
                out.append(event)
        return b"".join(out)

    def _read(self, event: bytes) -> bool:
        """Note what the event says; whether it goes to the client."""
        payload = event.strip()
        if not payload.startswith(b"data:"):
            return True
        body = payload[5:].strip()
        if body == b"[DONE]":
            self.done = True
            return True
        try:
            chunk = json.loads(body)
        except ValueError:
            return True
        if not isinstance(chunk, dict):
            return True
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            self.completion_tokens = int(usage.get("completion_tokens") or 0)
            if not chunk.get("choices"):
                return self.keep_usage_chunk
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content") or choice.get("text"):
                self.chunks_with_text += 1
        return True

    def completion(self) -> int:
        """Completion tokens: as reported, else one per chunk that carried text."""
        return (
            self.completion_tokens if self.completion_tokens is not None else self.chunks_with_text
        )
