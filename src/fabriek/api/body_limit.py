"""The most a request body may carry (413), counted as it streams in.

`Content-Length` alone is not trusted: a chunked body has none, and a client may send more
than it declared; so the bytes are counted as the app reads them, and reading stops at the
limit. Routes that stream large content into storage have their own limits and are listed in
`STREAMED` with them.
"""

from __future__ import annotations

import re

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fabriek.api.problems import problem

STREAMED: dict[str, str] = {
    # path pattern: where its own limit is
    r"^/api/v1/datasets/[^/]+/[^/]+/versions$": "the project's dataset quota (dataset_quota_gib)",
    r"^/api/v1/support/tickets/[^/]+/attachments$": "support_attachment_max_mib",
    r"^/api/v1/support/inbound$": "twice support_attachment_max_mib and 1 MiB of mail",
    r"^/v1/": "the OpenAI-compatible gateway's own limit (8 MiB)",
    r"^/apps/": "the job's own web app (a notebook's uploads)",
}
_STREAMED = re.compile("|".join(f"(?:{p})" for p in STREAMED))


class BodyTooLarge(HTTPException):
    """Raised from `receive` once the body passes the limit: the exception handlers answer
    413 with a problem document."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"the request body is larger than {limit} bytes, the most this server takes "
            "(FABRIEK_MAX_REQUEST_BYTES); send less, or upload data as a dataset",
        )


def _declared(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimitMiddleware:
    """Plain ASGI (no buffering): a body past `max_bytes` is answered 413 and not read on."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _STREAMED.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        declared = _declared(scope)
        if declared is not None and declared > limit:
            # Refused before a byte of it is read.
            await problem(413, BodyTooLarge(limit).detail, scope["path"])(scope, receive, send)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge as exc:
            # Read outside a route's exception handlers (by a middleware): answered here.
            if started:
                raise
            await problem(413, exc.detail, scope["path"])(scope, receive, send)
