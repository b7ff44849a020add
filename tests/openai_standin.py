"""A stand-in model server for the gateway's tests: a real process on a loopback port that
speaks the OpenAI protocol (chat, completions, embeddings; streaming with usage; a context
limit answered 400; no usage at all when the prompt holds the word NOUSAGE), echoing the
prompt's words as its completion, so that tokens, streaming and usage are real bytes on a
real socket. It stands in until the CPU model server (`fabriek.model_server`) is used here;
it runs no model.

Run: python tests/openai_standin.py PORT [DELAY_S]. DELAY_S is the pause between streamed
tokens (for disconnect tests).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

CONTEXT = 512
DELAY_S = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
SERVED: dict[str, int] = {"streamed_tokens": 0, "cancelled": 0}


def _words(body: dict[str, Any]) -> list[str]:
    text = " ".join(
        str(m.get("content", "")) for m in body.get("messages") or () if isinstance(m, dict)
    )
    prompt = body.get("prompt") or body.get("input") or ""
    return (text + " " + (prompt if isinstance(prompt, str) else json.dumps(prompt))).split()


async def health(_request: Request) -> Response:
    return JSONResponse({"ok": True})


async def stats(_request: Request) -> Response:
    return JSONResponse(SERVED)


async def completions(request: Request) -> Response:
    body = await request.json()
    words = _words(body)
    if len(words) > CONTEXT:
        return JSONResponse(
            {"error": {"message": f"This model's maximum context length is {CONTEXT} tokens, "
                       f"your request has {len(words)}", "type": "invalid_request_error",
                       "code": "context_length_exceeded"}},
            status_code=400,
        )  # fmt: skip
    limit = int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)
    out = (words * 4)[:limit] or ["ok"]
    usage = {"prompt_tokens": len(words), "completion_tokens": len(out),
             "total_tokens": len(words) + len(out)}  # fmt: skip
    chat = request.url.path.endswith("/chat/completions")
    model = body.get("model", "standin")
    if request.url.path.endswith("/embeddings"):
        data = [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}]
        return JSONResponse({"object": "list", "data": data, "model": model,
                             "usage": {"prompt_tokens": len(words), "total_tokens": len(words)}})  # fmt: skip
    if "NOUSAGE" in words:
        usage = {}  # a server that reports no usage: the gateway counts for itself
    if not body.get("stream"):
        text = " ".join(out)
        choice = ({"index": 0, "message": {"role": "assistant", "content": text},
                   "finish_reason": "length"} if chat
                  else {"index": 0, "text": text, "finish_reason": "length"})  # fmt: skip
        answer = {"id": "cmpl-1", "object": "chat.completion" if chat else "text_completion",
                  "created": int(time.time()), "model": model, "choices": [choice]}  # fmt: skip
        if usage:
            answer["usage"] = usage
        return JSONResponse(answer)
    include = bool((body.get("stream_options") or {}).get("include_usage")) and bool(usage)
    return StreamingResponse(
        _stream(out, chat, model, include, usage), media_type="text/event-stream"
    )


async def _stream(
    out: list[str], chat: bool, model: str, include: bool, usage: dict[str, int]
) -> AsyncIterator[bytes]:
    kind = "chat.completion.chunk" if chat else "text_completion"
    try:
        for i, word in enumerate(out):
            if word == "BREAK" and i > 1:
                # A replica that fails mid-stream: the connection ends without its last chunk.
                raise RuntimeError("the stand-in breaks the stream, as asked")
            piece = word if i == 0 else " " + word
            choice = ({"index": 0, "delta": {"content": piece}, "finish_reason": None} if chat
                      else {"index": 0, "text": piece, "finish_reason": None})  # fmt: skip
            chunk = {"id": "c1", "object": kind, "created": 0, "model": model, "choices": [choice]}
            if include:
                chunk["usage"] = None
            yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
            SERVED["streamed_tokens"] += 1
            if DELAY_S:
                await asyncio.sleep(DELAY_S)
        if include:
            last = {
                "id": "c1",
                "object": kind,
                "created": 0,
                "model": model,
                "choices": [],
                "usage": usage,
            }
            yield b"data: " + json.dumps(last).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"
    except asyncio.CancelledError:
        SERVED["cancelled"] += 1
        raise


app = Starlette(routes=[
    Route("/health", health), Route("/stats", stats),
    Route("/v1/chat/completions", completions, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
    Route("/v1/embeddings", completions, methods=["POST"]),
])  # fmt: skip

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
