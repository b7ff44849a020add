"""One request through the gateway to a replica: the replica with the fewest requests in
flight, a retry on another when one fails before anything was sent to the client, the
response passed through (server-sent events one by one), and the usage counted."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fabriek.api.gateway.pool import Response, UpstreamError
from fabriek.api.gateway.sse import StreamTally
from fabriek.domain.gateway import (
    KeyFacts,
    UsageDelta,
    UsageKey,
    answer_words,
    count_tokens,
    sse_error,
)
from fabriek.domain.roles import Principal
from fabriek.services.endpoints.routing import EndpointRoute, ReplicaTarget

if TYPE_CHECKING:
    from fabriek.api.gateway.asgi import Gateway, Receive, Scope, Send

# Response headers of the replica that are the connection's, not the answer's.
_HOP = frozenset(
    {b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"server", b"date"}
)


class GatewayError(Exception):
    """An answer in OpenAI's error shape, with its status (and Retry-After)."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type_, self.code = status, message, type_, code
        self.retry_after = retry_after


@dataclass(frozen=True)
class Caller:
    """Who calls: an endpoint key's facts, or a member with their own token."""

    key: KeyFacts | None
    user: Principal | None

    def usage_key(self, route: EndpointRoute, now: datetime) -> UsageKey:
        if self.key is not None:
            return UsageKey(
                route.endpoint_id,
                route.project_id,
                f"key:{self.key.key_id}",
                self.key.key_id,
                None,
                now.date(),
            )
        assert self.user is not None
        return UsageKey(
            route.endpoint_id,
            route.project_id,
            f"user:{self.user.user_id}",
            None,
            self.user.user_id,
            now.date(),
        )


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request's JSON object (400 in OpenAI's shape when it is none)."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise GatewayError(400, f"the body is not JSON: {exc}", "invalid_request_error") from exc
    if not isinstance(body, dict):
        raise GatewayError(400, "the body must be a JSON object", "invalid_request_error")
    return body


def _prompt_words(body: dict[str, Any]) -> int:
    """A rough prompt size for when the replica reports no usage."""
    parts: list[str] = []
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        parts.append(content if isinstance(content, str) else json.dumps(content or ""))
    for key in ("prompt", "input"):
        value = body.get(key)
        parts.append(value if isinstance(value, str) else json.dumps(value) if value else "")
    return count_tokens(" ".join(parts))


class Upstream:
    """One request's way through a replica (or, after a failure, another)."""

    def __init__(
        self,
        gateway: Gateway,
        caller: Caller,
        route: EndpointRoute,
        path: str,
        body: dict[str, Any],
    ) -> None:
        self.gateway, self.caller, self.route, self.path, self.body = (
            gateway,
            caller,
            route,
            path,
            body,
        )
        self.stream = bool(body.get("stream"))
        options = body.get("stream_options")
        self.client_wants_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        if self.stream and not self.client_wants_usage:
            # Ask the replica for its usage; the extra chunk is not passed on.
            body["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.failed = False

    async def run(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.route
        project_id = self.caller.key.project_id if self.caller.key else None
        if not route.replicas:
            route = await self.gateway.wait_for_replicas(route, project_id)
        tried: set[int] = set()
        refreshed = False
        try:
            while True:
                left = [r for r in route.replicas if r.replica_id not in tried]
                if not left and tried and not refreshed:
                    # Every replica the (cached) route named failed before anything was
                    # sent: the route may predate a replica that took over (a rollout, a
                    # replacement), so ask the store once for the replicas healthy now.
                    refreshed = True
                    route = await self.gateway.fresh_route(route, project_id)
                    left = [r for r in route.replicas if r.replica_id not in tried]
                if not left:
                    self.failed = True
                    raise GatewayError(
                        503,
                        f"no healthy replica of {route.name} answered; try again",
                        "server_error",
                        "replica_failed",
                        retry_after=5,
                    )
                pick = self.gateway.outstanding.pick([r.replica_id for r in left])
                target = next(r for r in left if r.replica_id == pick)
                tried.add(pick)
                self.gateway.outstanding.start(pick)
                try:
                    if await self._once(target, receive, send):
                        return
                finally:
                    self.gateway.outstanding.end(pick)
                # The replica failed before anything reached the client: try another.
                self.gateway.forget_route(route)
        finally:
            self._count()

    def _count(self) -> None:
        now = datetime.now(UTC)
        delta = UsageDelta(1, int(self.failed), self.prompt_tokens, self.completion_tokens)
        self.gateway.meter.add(self.caller.usage_key(self.route, now), delta, now)
        if self.caller.key is not None:
            self.gateway.windows.add_tokens(
                self.caller.key.key_id, self.prompt_tokens + self.completion_tokens
            )

    async def _once(self, target: ReplicaTarget, receive: Receive, send: Send) -> bool:
        """Send to one replica; False when it failed before anything was sent back."""
        body = dict(self.body)
        if target.model:
            body["model"] = target.model
        headers = {"Content-Type": "application/json"}
        if target.secret:
            headers["Authorization"] = f"Bearer {target.secret}"
        url = target.base_url.rstrip("/") + "/v1" + self.path
        try:
            response = await self.gateway.pool.post(url, json.dumps(body).encode(), headers)
        except UpstreamError:
            return False
        try:
            if response.status >= 500:
                return False
            passed = [(k, v) for k, v in response.headers if k not in _HOP]
            if not self.stream or response.status != 200:
                try:
                    content = await response.read()
                except UpstreamError:
                    return False
                self._usage_of(content, response.status)
                passed.append((b"content-length", str(len(content)).encode()))
                await send(
                    {"type": "http.response.start", "status": response.status, "headers": passed}
                )
                await send({"type": "http.response.body", "body": content})
                return True
            return await self._pass_stream(response, passed, receive, send)
        finally:
            response.close()

    def _usage_of(self, content: bytes, status: int) -> None:
        if status != 200:
            self.failed = True
            return
        try:
            answer = json.loads(content)
        except ValueError:
            answer = None
        usage = answer.get("usage") if isinstance(answer, dict) else None
        if not isinstance(usage, dict):
            usage = {}
        self.prompt_tokens = int(usage.get("prompt_tokens") or _prompt_words(self.body))
        reported = usage.get("completion_tokens")
        # An embedding reports no completion; an answer without usage is counted by its words.
        self.completion_tokens = int(reported) if reported is not None else answer_words(answer)

    async def _pass_stream(
        self,
        response: Response,
        headers: list[tuple[bytes, bytes]],
        receive: Receive,
        send: Send,
    ) -> bool:
        """Pass the events on as they come; a client that goes away closes the replica's
        connection (the replica stops generating); tokens so far are counted."""
        tally = StreamTally(keep_usage_chunk=self.client_wants_usage)
        chunks = response.chunks()
        try:
            first = await chunks.__anext__()
        except (UpstreamError, StopAsyncIteration):
            return False
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        pump = asyncio.ensure_future(self._pump(first, chunks, tally, send))
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait({pump, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, gone):
                task.cancel()
            await asyncio.gather(pump, gone, return_exceptions=True)
            self.prompt_tokens = (
                tally.prompt_tokens if tally.prompt_tokens is not None else _prompt_words(self.body)
            )
            self.completion_tokens = tally.completion()
        if gone.done() and not gone.cancelled():
            self.failed = not tally.done
        return True

    async def _pump(self, first: bytes, chunks: Any, tally: StreamTally, send: Send) -> None:
        data = tally.feed(first)
        if data:
            await send({"type": "http.response.body", "body": data, "more_body": True})
        try:
            async for chunk in chunks:
                data = tally.feed(chunk)
                if data:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
        except UpstreamError:
            # The replica failed after the stream began: end it cleanly with an error event.
            self.failed = True
            await send(
                {
                    "type": "http.response.body",
                    "body": sse_error("the replica failed mid-stream"),
                    "more_body": True,
                }
            )
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _disconnected(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
