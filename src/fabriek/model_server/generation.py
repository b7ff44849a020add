"""Generating text with the tiny model: prompts (a simple chat template), sampling
(temperature, top_p, seed) and stop strings, one token at a time so the server can stream
and stop when the client leaves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fabriek.model_server.model import KVCache, LoadedModel


def chat_prompt(messages: Sequence[dict[str, Any]]) -> str:
    """The prompt of a chat: each message as `<|role|>` and its text, then the assistant's
    turn."""
    parts = []
    for message in messages:
        content = message.get("content") or ""
        if isinstance(content, list):  # OpenAI's content parts: the text ones
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        parts.append(f"<|{message.get('role', 'user')}|>\n{content}\n")
    return "".join(parts) + "<|assistant|>\n"


@dataclass
class Sampling:
    """How the next token is chosen."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)


class Generation:
    """One request's generation: `step()` gives the next piece of text until `done`."""

    def __init__(self, loaded: LoadedModel, prompt: list[int], sampling: Sampling) -> None:
        self.loaded = loaded
        self.sampling = sampling
        self._rng: np.random.Generator | None = None  # made when first sampled from
        self.cache: KVCache = loaded.model.new_cache()
        self.prompt_tokens = len(prompt)
        self.completion_tokens = 0
        self.finish_reason: str | None = None
        # Set from the event loop when the client has gone: `run` stops at the next token.
        self.cancelled = False
        self._pending = prompt
        self._decoder = loaded.tokenizer.stream_decoder()
        self._text = ""  # generated text not yet given out (held back for stop strings)
        self._hold = max((len(s) for s in sampling.stop), default=1) - 1

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    def _next_token(self) -> int:
        hidden = self.loaded.model.forward(self._pending, self.cache)[-1]
        logits = self.loaded.model.logits(hidden)
        s = self.sampling
        if s.temperature <= 0:
            return int(np.argmax(logits))
        z = logits / s.temperature
        p = np.exp(z - z.max())
        p /= p.sum()
        if s.top_p < 1.0:
            order = np.argsort(-p)
            keep = order[: int(np.searchsorted(np.cumsum(p[order]), s.top_p)) + 1]
            q = np.zeros_like(p)
            q[keep] = p[keep]
            p = q / q.sum()
        if self._rng is None:
            self._rng = np.random.default_rng(s.seed)
        # Inverse CDF: what Generator.choice does, without its checks' cost per token.
        at = int(np.searchsorted(np.cumsum(p), self._rng.random() * float(p.sum())))
        return min(at, len(p) - 1)

    def step(self) -> str:
        """Generate one token; the text that may now be given out (perhaps empty)."""
        if self.done:
            return ""
        token = self._next_token()
        self._pending = [token]
        self.completion_tokens += 1
        self._text += self._decoder.feed(token)
        for stop in self.sampling.stop:
            at = self._text.find(stop)
            if at >= 0:
                self.finish_reason = "stop"
                out, self._text = self._text[:at], ""
                return out
        full = self.cache.length + 1 >= self.loaded.config.max_context
        if self.completion_tokens >= self.sampling.max_tokens or full:
            self.finish_reason = "length"
            out, self._text = self._text + self._decoder.flush(), ""
            return out
        cut = max(len(self._text) - self._hold, 0)
        out, self._text = self._text[:cut], self._text[cut:]
        return out

    def run(self) -> str:
        """Generate to the end; the whole text."""
        pieces = []
        while not self.done and not self.cancelled:
            pieces.append(self.step())
        return "".join(pieces)
