"""The OpenAI protocol's shapes: reading a request's sampling options and writing answers,
stream chunks and errors exactly as OpenAI (and vLLM) send them. Pure: no model, no I/O."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from fabriek.model_server.generation import Sampling

DEFAULT_MAX_TOKENS = 256


class RequestError(Exception):
    """A request the server refuses, with OpenAI's error fields."""

    def __init__(self, status: int, message: str, param: str | None = None, kind: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.param = param
        self.kind = kind or ("invalid_request_error" if status < 500 else "server_error")


def error_body(status: int, message: str, kind: str, param: str | None = None) -> bytes:
    """OpenAI's error document."""
    error = {"message": message, "type": kind, "param": param, "code": status}
    return json.dumps({"error": error, "object": "error"}).encode()


def _number(body: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise RequestError(400, f"{key} must be a number from {low} to {high}", key)
    return float(value)


def sampling_of(body: dict[str, Any], prompt_tokens: int, context: int) -> Sampling:
    """The sampling options of a request whose prompt has `prompt_tokens` tokens; a prompt
    (plus the tokens asked for) past the model's context is refused, naming the limit."""
    room = context - prompt_tokens
    asked = body.get("max_completion_tokens", body.get("max_tokens"))
    if asked is not None and (not isinstance(asked, int) or isinstance(asked, bool) or asked < 1):
        raise RequestError(400, "max_tokens must be a positive integer", "max_tokens")
    if room < 1 or (asked is not None and asked > room):
        raise RequestError(
            400,
            f"This model's maximum context length is {context} tokens. However, you "
            f"requested {prompt_tokens + (asked or 0)} tokens ({prompt_tokens} in the "
            f"prompt, {asked or 0} in the completion). Please reduce the length of the "
            "prompt or the completion.",
            "messages" if "messages" in body else "prompt",
        )
    stop = body.get("stop") or []
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise RequestError(400, "stop must be a string or a list of strings", "stop")
    if (body.get("n") or 1) != 1:
        raise RequestError(400, "only n=1 is supported", "n")
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise RequestError(400, "seed must be an integer", "seed")
    return Sampling(
        max_tokens=asked if asked is not None else min(DEFAULT_MAX_TOKENS, room),
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0) or 1.0,
        seed=seed,
        stop=stop,
    )


def usage(prompt: int, completion: int) -> dict[str, int]:
    """OpenAI's usage fields."""
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


class Answer:
    """One answer's identity (id, creation time, model) and its shapes, chat or text."""

    def __init__(self, chat: bool, model: str) -> None:
        self.chat = chat
        self.model = model
        self.id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        self.created = int(time.time())
        self.object = "chat.completion" if chat else "text_completion"

    def _head(self, obj: str) -> dict[str, Any]:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model}

    def whole(self, text: str, finish: str | None, prompt: int, completion: int) -> bytes:
        """A non-streamed answer."""
        if self.chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": finish,
            }
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        out = self._head(self.object) | {"choices": [choice], "usage": usage(prompt, completion)}
        return json.dumps(out).encode()

    def chunk(self, text: str | None, finish: str | None, with_usage: bool) -> bytes:
        """One server-sent event of a stream (text None: the chat's opening role chunk)."""
        obj = "chat.completion.chunk" if self.chat else "text_completion"
        if self.chat:
            delta: dict[str, Any]
            if text is None:
                delta = {"role": "assistant", "content": ""}
            else:
                delta = {"content": text} if text or finish is None else {}
            choice: dict[str, Any] = {"index": 0, "delta": delta}
        else:
            choice = {"index": 0, "text": text or ""}
        choice |= {"logprobs": None, "finish_reason": finish}
        out = self._head(obj) | {"choices": [choice]}
        if with_usage:
            out["usage"] = None
        return b"data: " + json.dumps(out).encode() + b"\n\n"

    def usage_chunk(self, prompt: int, completion: int) -> bytes:
        """The last chunk of a stream that asked for usage: no choices, the usage."""
        obj = "chat.completion.chunk" if self.chat else "text_completion"
        out = self._head(obj) | {"choices": [], "usage": usage(prompt, completion)}
        return b"data: " + json.dumps(out).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"
