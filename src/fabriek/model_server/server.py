"""The model server's HTTP side: a raw ASGI app (no framework: small requests must cost
little) speaking the OpenAI protocol, run by uvicorn.

Generation runs on a small thread pool, at most `max_running` requests at once; the rest
wait for a slot (vLLM's `vllm:num_requests_running` and `vllm:num_requests_waiting` on
`/metrics`, which the autoscaler reads). A stream checks between tokens whether its client
has gone, and stops generating if so. Only callers presenting the secret are served
(`Authorization: Bearer <secret>`, or the web-app proxy's header); `/health` stays open.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fabriek.model_server.generation import Generation, chat_prompt
from fabriek.model_server.model import LoadedModel
from fabriek.model_server.protocol import DONE, Answer, RequestError, error_body, sampling_of

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SECRET_HEADER = b"x-fabriek-web-secret"
JSON = [(b"content-type", b"application/json")]
# Requests this small are generated on the event loop itself: a hop to a thread would
# cost more than the work.
INLINE_TOKENS = 48
MAX_BODY = 16 * 1024 * 1024


class ModelServer:
    """The ASGI application serving one loaded model."""

    def __init__(
        self, loaded: LoadedModel, name: str, secret: str | None, max_running: int = 4
    ) -> None:
        self.loaded = loaded
        self.name = name
        self._secret = secret.encode() if secret else None
        self._slots = max_running
        self._free = asyncio.Semaphore(max_running)
        self._pool = ThreadPoolExecutor(max_running, thread_name_prefix="generate")
        self.running = 0
        self.waiting = 0
        self.prompt_tokens_total = 0
        self.generation_tokens_total = 0
        self.requests_total = 0
        self._created = int(time.time())

    # --- the plumbing -------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            await self._route(scope, receive, send)
        except RequestError as exc:
            await _respond(send, exc.status, error_body(exc.status, str(exc), exc.kind, exc.param))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self._pool.shutdown(wait=False, cancel_futures=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        if path == "/health":
            await _respond(send, 200, b"{}")
            return
        if not self._allowed(scope):
            raise RequestError(401, "a valid API key is needed", kind="authentication_error")
        if method == "GET" and path == "/v1/models":
            await _respond(send, 200, self._models())
        elif method == "GET" and path == "/metrics":
            await _respond(send, 200, self._metrics(), [(b"content-type", b"text/plain")])
        elif method == "POST" and path in ("/v1/chat/completions", "/v1/completions"):
            body = await _json_body(receive)
            await self._complete(body, path == "/v1/chat/completions", receive, send)
        elif method == "POST" and path == "/v1/embeddings":
            await self._embeddings(await _json_body(receive), send)
        else:
            raise RequestError(404, f"no route {method} {path}", kind="not_found_error")

    def _allowed(self, scope: Scope) -> bool:
        if self._secret is None:
            return True
        for key, value in scope["headers"]:
            if key == b"authorization" and value[:7].lower() == b"bearer ":
                if hmac.compare_digest(value[7:].strip(), self._secret):
                    return True
            elif key == SECRET_HEADER and hmac.compare_digest(value, self._secret):
                return True
        return False

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        self.waiting += 1
        try:
            await self._free.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._free.release()

    # --- the routes ---------------------------------------------------------------
    def _models(self) -> bytes:
        model = {
            "id": self.name,
            "object": "model",
            "created": self._created,
            "owned_by": "fabriek",
            "max_model_len": self.loaded.config.max_context,
        }
        return json.dumps({"object": "list", "data": [model]}).encode()

    def _metrics(self) -> bytes:
        label = f'{{model_name="{self.name}"}}'
        rows = [
            ("vllm:num_requests_running", "gauge", self.running),
            ("vllm:num_requests_waiting", "gauge", self.waiting),
            ("vllm:prompt_tokens_total", "counter", self.prompt_tokens_total),
            ("vllm:generation_tokens_total", "counter", self.generation_tokens_total),
            ("vllm:request_success_total", "counter", self.requests_total),
        ]
        text = "".join(f"# TYPE {n} {t}\n{n}{label} {float(v)}\n" for n, t, v in rows)
        return text.encode()

    def _prompt(self, body: dict[str, Any], chat: bool) -> list[int]:
        tokenizer = self.loaded.tokenizer
        if chat:
            messages = body.get("messages")
            if (
                not isinstance(messages, list)
                or not messages
                or not all(isinstance(m, dict) for m in messages)
            ):
                raise RequestError(400, "messages must be a non-empty list of objects", "messages")
            return tokenizer.encode(chat_prompt(messages))
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if isinstance(prompt, str):
            return tokenizer.encode(prompt)
        if isinstance(prompt, list) and all(
            isinstance(t, int) and 0 <= t < tokenizer.vocab_size for t in prompt
        ):
            return list(prompt)
        raise RequestError(400, "prompt must be a string or a list of token ids", "prompt")

    async def _complete(
        self, body: dict[str, Any], chat: bool, receive: Receive, send: Send
    ) -> None:
        prompt = self._prompt(body, chat)
        sampling = sampling_of(body, len(prompt), self.loaded.config.max_context)
        answer = Answer(chat, self.name)
        generation = Generation(self.loaded, prompt, sampling)
        async with self._slot():
            try:
                if body.get("stream"):
                    options = body.get("stream_options") or {}
                    await self._stream(
                        generation, answer, bool(options.get("include_usage")), receive, send
                    )
                    return
                if len(prompt) + sampling.max_tokens <= INLINE_TOKENS:
                    text = generation.run()
                else:
                    text = await self._run_watched(generation, receive)
            finally:
                self._count(generation)
        done = answer.whole(
            text, generation.finish_reason, len(prompt), generation.completion_tokens
        )
        await _respond(send, 200, done)

    def _count(self, generation: Generation) -> None:
        self.requests_total += 1
        self.prompt_tokens_total += generation.prompt_tokens
        self.generation_tokens_total += generation.completion_tokens

    async def _run_watched(self, generation: Generation, receive: Receive) -> str:
        """Generate on the pool, cancelling the work if the client disconnects meanwhile."""

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            generation.cancelled = True

        watcher = asyncio.create_task(watch())
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, generation.run)
        finally:
            watcher.cancel()

    async def _stream(
        self, generation: Generation, answer: Answer, with_usage: bool, receive: Receive, send: Send
    ) -> None:
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch())
        loop = asyncio.get_running_loop()
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            if answer.chat:
                await _chunk(send, answer.chunk(None, None, with_usage))
            while not generation.done and not gone.is_set():
                piece = await loop.run_in_executor(self._pool, generation.step)
                if piece:
                    await _chunk(send, answer.chunk(piece, None, with_usage))
            if gone.is_set():
                return
            await _chunk(send, answer.chunk("", generation.finish_reason, with_usage))
            if with_usage:
                p, c = generation.prompt_tokens, generation.completion_tokens
                await _chunk(send, answer.usage_chunk(p, c))
            await send({"type": "http.response.body", "body": DONE, "more_body": False})
        except OSError:
            return  # the client went away while we wrote to it
        finally:
            watcher.cancel()

    async def _embeddings(self, body: dict[str, Any], send: Send) -> None:
        inputs = body.get("input")
        tokenizer, context = self.loaded.tokenizer, self.loaded.config.max_context
        if isinstance(inputs, str) or (isinstance(inputs, list) and _token_ids(inputs, 0)):
            inputs = [inputs]
        vocab = tokenizer.vocab_size
        if not isinstance(inputs, list) or not inputs:
            raise RequestError(400, "input must be a string or a list of strings", "input")
        if not all(isinstance(x, str) or _token_ids(x, vocab) for x in inputs):
            raise RequestError(400, "each input must be a string or a list of token ids", "input")
        texts = [tokenizer.encode(x) if isinstance(x, str) else list(x) for x in inputs]
        for tokens in texts:
            if not tokens or len(tokens) > context:
                raise RequestError(
                    400,
                    f"This model's maximum context length is {context} tokens; an input "
                    f"has {len(tokens)} (each needs 1 to {context}).",
                    "input",
                )
        loop = asyncio.get_running_loop()
        async with self._slot():
            vectors = await loop.run_in_executor(
                self._pool, lambda: [self.loaded.model.embed(t) for t in texts]
            )
        count = sum(len(t) for t in texts)
        self.prompt_tokens_total += count
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
        out = {
            "object": "list",
            "data": data,
            "model": self.name,
            "usage": {"prompt_tokens": count, "total_tokens": count},
        }
        await _respond(send, 200, json.dumps(out).encode())


def _token_ids(value: object, vocab: int) -> bool:
    """Whether `value` is a non-empty list of token ids (below `vocab`, if it is not 0)."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(
            isinstance(t, int) and not isinstance(t, bool) and 0 <= t < (vocab or 1 << 62)
            for t in value
        )
    )


async def _json_body(receive: Receive) -> dict[str, Any]:
    chunks = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise RequestError(413, "the request body is too large")
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    try:
        body = json.loads(b"".join(chunks))
    except ValueError as exc:
        raise RequestError(400, f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise RequestError(400, "the body must be a JSON object")
    return body


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] = JSON
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _chunk(send: Send, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})
