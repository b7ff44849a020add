"""The gateway's ASGI application: `/v1/chat/completions`, `/v1/completions`,
`/v1/embeddings` and `/v1/models`, proxied to an endpoint's healthy replicas.

The hot path reads no store: the key's facts and the endpoint's route come from memory
(`caches`), usage is counted in memory and written about every second (`Meter`), and every
replica is reached through one shared HTTP/1.1 keep-alive pool.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

import anyio

from fabriek.api.gateway.caches import KEY_TTL_S, ROUTE_TTL_S, Outstanding, TtlCache, Windows
from fabriek.api.gateway.pool import Pool
from fabriek.api.gateway.upstream import Caller, GatewayError, Upstream, parse_body
from fabriek.domain.errors import (
    FabriekError,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unauthenticated,
)
from fabriek.domain.gateway import (
    KeyFacts,
    ProjectRefusal,
    error_body,
    hash_key,
    is_endpoint_key,
    parse_model,
)
from fabriek.domain.roles import Principal
from fabriek.services.endpoints.metering import Meter
from fabriek.services.endpoints.routing import EndpointRoute

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_log = logging.getLogger(__name__)

POST_PATHS = frozenset({"/chat/completions", "/completions", "/embeddings"})
MAX_BODY = 8 * 1024 * 1024
FLUSH_EVERY_S = 1.0
# How long a request waits for an endpoint at zero (or with no healthy replica) to wake.
WAKE_TIMEOUT_S = 180.0
# How long a project's suspension and allocation state are trusted (they change by the
# hour, not the second; a suspension reaches every gateway within this).
REFUSAL_TTL_S = 10.0

# (endpoint id, `PROJECT/NAME` or `NAME`; the caller's project id or None) -> the route.
Resolver = Callable[[int | str, int | None], EndpointRoute]
Waker = Callable[[int], None]


class Gateway:
    """The `/v1` application. `resolve` and `wake` reach the store (run in threads, only on
    a cache miss); `keys` reads a key's facts; `principal` a member's token."""

    def __init__(
        self,
        resolve: Resolver,
        wake: Waker,
        keys: Callable[[str], KeyFacts | None],
        principal: Callable[[str], Principal],
        models: Callable[[KeyFacts | None, Principal | None], list[dict[str, Any]]],
        flush: Callable[[Meter], int],
        refusal: Callable[[int], ProjectRefusal | None] = lambda _project_id: None,
    ) -> None:
        self.resolve, self.wake, self.keys = resolve, wake, keys
        self.principal, self.models, self._flush = principal, models, flush
        self.refusal = refusal
        self.refusal_cache: TtlCache[ProjectRefusal | None] = TtlCache(REFUSAL_TTL_S)
        self.key_cache: TtlCache[KeyFacts | None] = TtlCache(KEY_TTL_S)
        self.user_cache: TtlCache[Principal] = TtlCache(KEY_TTL_S)
        self.routes: TtlCache[EndpointRoute] = TtlCache(ROUTE_TTL_S)
        self.outstanding = Outstanding()
        self.windows = Windows()
        self.meter = Meter()
        self.wake_timeout_s = WAKE_TIMEOUT_S
        self._pool: Pool | None = None
        self._flusher: asyncio.Task[None] | None = None

    @property
    def pool(self) -> Pool:
        """The shared keep-alive pool (and the usage flusher), started on first use."""
        if self._pool is None:
            self._pool = Pool()
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())
        return self._pool

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY_S)
            if self._pool is not None:
                self._pool.prune()
            try:
                await anyio.to_thread.run_sync(self._flush, self.meter)
            except Exception:  # kept for the next flush: the Meter puts it back
                _log.warning("writing endpoint usage failed; retried", exc_info=True)

    async def close(self) -> None:
        """Stop the flusher, write what was gathered, close the pool (on shutdown)."""
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        await anyio.to_thread.run_sync(self._flush, self.meter)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        if path.startswith("/v1/"):
            path = path[3:]
        try:
            caller = await self._authenticate(scope)
            if scope["method"] == "GET" and path == "/models":
                data = await anyio.to_thread.run_sync(self.models, caller.key, caller.user)
                await _json(send, 200, {"object": "list", "data": data})
                return
            if scope["method"] != "POST" or path not in POST_PATHS:
                raise GatewayError(
                    404, f"no route {scope['method']} /v1{path}", "invalid_request_error"
                )
            raw = await _read_body(receive)
            body = parse_body(raw)
            route = await self._route(caller, body.get("model"))
            self._limit(caller)
            await self._paid(route)
            upstream = Upstream(self, caller, route, path, body)
            await upstream.run(scope, receive, send)
        except GatewayError as exc:
            await _error(send, exc)

    async def _authenticate(self, scope: Scope) -> Caller:
        presented = _bearer(scope)
        if presented is None:
            raise GatewayError(
                401,
                "give an endpoint key or your Fabriek token as 'Authorization: Bearer ...'",
                "authentication_error",
                "missing_api_key",
            )
        now = datetime.now(UTC)
        if is_endpoint_key(presented):
            digest = hash_key(presented)
            hit, facts = self.key_cache.get(digest)
            if not hit:
                facts = await anyio.to_thread.run_sync(self.keys, presented)
                self.key_cache.put(digest, facts)
            if facts is None:
                raise GatewayError(
                    401, "this endpoint key is not known", "authentication_error", "invalid_api_key"
                )
            if facts.revoked:
                raise GatewayError(
                    401, "this endpoint key was revoked", "authentication_error", "invalid_api_key"
                )
            if facts.expires_at is not None and facts.expires_at <= now:
                raise GatewayError(
                    401, "this endpoint key has expired", "authentication_error", "invalid_api_key"
                )
            return Caller(key=facts, user=None)
        hit_user, who = self.user_cache.get(presented)
        if not hit_user or who is None:
            try:
                who = await anyio.to_thread.run_sync(self.principal, presented)
            except Unauthenticated as exc:
                raise GatewayError(
                    401, str(exc), "authentication_error", "invalid_api_key"
                ) from exc
            self.user_cache.put(presented, who)
        return Caller(key=None, user=who)

    async def _route(self, caller: Caller, model: object) -> EndpointRoute:
        if not isinstance(model, str) or not model.strip():
            raise GatewayError(
                400,
                "name the endpoint in 'model' (ENDPOINT or PROJECT/ENDPOINT)",
                "invalid_request_error",
                "model_not_found",
            )
        project, name = parse_model(model)
        project_id = caller.key.project_id if caller.key is not None else None
        if caller.key is None and project is None:
            raise GatewayError(
                404,
                f"name the endpoint as PROJECT/{name} when calling with your own token",
                "invalid_request_error",
                "model_not_found",
            )
        cache_key = (project, name, project_id)
        hit, route = self.routes.get(cache_key)
        if not hit or route is None:
            try:
                route = await anyio.to_thread.run_sync(self.resolve, model.strip(), project_id)
            except NotFound as exc:
                raise _no_model(model) from exc
            except ServiceUnavailable as exc:
                raise GatewayError(
                    503, str(exc), "server_error", "unavailable", retry_after=30
                ) from exc
            self.routes.put(cache_key, route)
        if caller.key is not None:
            if route.project_id != caller.key.project_id:
                raise _no_model(model)
            if not caller.key.may_use(route.endpoint_id):
                raise GatewayError(
                    403, f"this key may not call {model}", "permission_error", "key_not_scoped"
                )
        elif caller.user is not None and not (
            caller.user.is_admin or route.project_id in caller.user.project_roles
        ):
            raise _no_model(model)
        return route

    async def _paid(self, route: EndpointRoute) -> None:
        """402 when the project's allocation is spent, 403 when the project or its
        allocation is suspended (read at most every REFUSAL_TTL_S)."""
        hit, refused = self.refusal_cache.get(route.project_id)
        if not hit:
            refused = await anyio.to_thread.run_sync(self.refusal, route.project_id)
            self.refusal_cache.put(route.project_id, refused)
        if refused is not None:
            raise GatewayError(refused.status, refused.message, refused.type, refused.code)

    def _limit(self, caller: Caller) -> None:
        facts = caller.key
        if facts is None:
            return
        wait = self.windows.admit(facts.key_id, facts.requests_per_minute, facts.tokens_per_minute)
        if wait is not None:
            raise GatewayError(
                429,
                "this key's per-minute limit is reached",
                "rate_limit_error",
                "rate_limit_exceeded",
                retry_after=wait,
            )
        if facts.tokens_per_month is not None:
            used = facts.month_tokens + self.meter.pending_tokens(facts.key_id)
            if used >= facts.tokens_per_month:
                now = datetime.now(UTC)
                first = (now.replace(day=28) + (now.replace(day=28) - now.replace(day=1))).replace(
                    day=1, hour=0, minute=0, second=0, microsecond=0
                )
                raise GatewayError(
                    429,
                    f"this key's monthly budget of {facts.tokens_per_month} tokens is spent",
                    "rate_limit_error",
                    "monthly_budget_exhausted",
                    retry_after=(first - now).total_seconds(),
                )

    async def wait_for_replicas(
        self, route: EndpointRoute, project_id: int | None
    ) -> EndpointRoute:
        """Wake the endpoint and wait until it has a healthy replica (503 on timeout; the
        reason, in OpenAI's shape, when no replica may be started at all)."""
        try:
            await anyio.to_thread.run_sync(self.wake, route.endpoint_id)
        except NotFound as exc:
            raise _no_model(route.name) from exc
        except Forbidden as exc:
            raise GatewayError(
                403, f"no replica of {route.name} may start: {exc}", "permission_error",
                "replica_refused",
            ) from exc  # fmt: skip
        except FabriekError as exc:
            raise GatewayError(
                503, f"no replica of {route.name} can start: {exc}", "server_error",
                "no_replica", retry_after=30,
            ) from exc  # fmt: skip
        deadline = time.monotonic() + self.wake_timeout_s
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            fresh = await anyio.to_thread.run_sync(self.resolve, route.endpoint_id, project_id)
            if fresh.replicas:
                return fresh
        raise GatewayError(
            503,
            f"no replica of {route.name} became ready within {self.wake_timeout_s:.0f} s (no capacity?); try again later",
            "server_error",
            "no_replica",
            retry_after=30,
        )

    async def fresh_route(self, route: EndpointRoute, project_id: int | None) -> EndpointRoute:
        """The endpoint's route read from the store now (cached again); the stale one when
        the endpoint is gone meanwhile (its replicas are then tried no more)."""
        try:
            fresh = await anyio.to_thread.run_sync(self.resolve, route.endpoint_id, project_id)
        except (NotFound, ServiceUnavailable):
            return route
        self.forget_route(route)
        return fresh

    def forget_route(self, route: EndpointRoute) -> None:
        """Drop cached routes of this endpoint (a replica failed or a new one is up)."""
        for key in [
            k for k, v in self.routes._entries.items() if v.value.endpoint_id == route.endpoint_id
        ]:
            self.routes.drop(key)


def _no_model(model: object) -> GatewayError:
    return GatewayError(
        404,
        f"The model '{model}' does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    )


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer":
                return None
            return token.strip() or None
    return None


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise GatewayError(400, "the client went away", "invalid_request_error")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise GatewayError(
                413,
                f"the request is larger than {MAX_BODY // (1024 * 1024)} MiB",
                "invalid_request_error",
                "request_too_large",
            )
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _json(send: Send, status: int, value: object) -> None:
    body = json.dumps(value).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _error(send: Send, exc: GatewayError) -> None:
    body = error_body(exc.message, exc.type_, exc.code)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if exc.retry_after is not None:
        headers.append((b"retry-after", str(max(1, int(exc.retry_after + 0.999))).encode()))
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
