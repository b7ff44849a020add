"""`/apps/<job id>/...`: Fabriek's authenticated proxy to the web apps jobs serve.

Only the job's owner gets through (their portal session or an API token); a browser without
a session is sent to sign in and back, a program gets 401. HTTP is streamed both ways and
WebSockets are relayed frame by frame, to the address the job's engine reports (a loopback
port here, a compute node's address at a Slurm site), which is never exposed itself. The
app is shown the job's secret, never the caller's Fabriek credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from fabriek.api.context import AppContext, authenticate_request
from fabriek.domain.errors import (
    FabriekError,
    Forbidden,
    ServiceUnavailable,
    Unauthenticated,
)
from fabriek.domain.roles import Principal
from fabriek.domain.web_apps import (
    app_prefix,
    request_headers,
    response_headers,
    same_origin,
)
from fabriek.services.identity.tokens import authenticate
from fabriek.services.web_apps.access import WebTarget, mark_active, open_web_app
from fabriek.web.layout import TOKEN_COOKIE, to_signin

router = APIRouter(include_in_schema=False)

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
# WebSocket close codes (RFC 6455 7.4.1): refused by policy; the app cannot be reached.
_POLICY, _UNREACHABLE = 1008, 1011


def _caller(conn: HTTPConnection, ctx: AppContext, session: Any) -> Principal | None:
    """The portal session's person, else an API token's, else None."""
    token = conn.cookies.get(TOKEN_COOKIE)
    if token:
        with contextlib.suppress(Unauthenticated):
            return authenticate(session, token, ctx.clock(), ctx.assurance)
    if conn.headers.get("authorization"):
        return authenticate_request(conn, ctx, session, ctx.clock())  # type: ignore[arg-type]
    return None


def _target(conn: HTTPConnection, ctx: AppContext, job_id: int) -> WebTarget | None:
    """The job's web app for the caller; None when nobody is signed in."""
    if not same_origin(conn.headers.get("origin"), conn.url.scheme, conn.headers.get("host")):
        raise Forbidden("a page of another site may not open a Fabriek web app")
    dispatcher = ctx.dispatcher
    if dispatcher is None:
        raise ServiceUnavailable("this server runs no engines: it cannot reach web apps")
    with ctx.sessions() as session:
        who = _caller(conn, ctx, session)
        if who is None:
            return None
        target = open_web_app(
            session, who, job_id, dispatcher.engine, dispatcher.registry.state_dir
        )
        mark_active(session, target, ctx.clock())
        return target


def _upstream_path(conn: HTTPConnection) -> str:
    query = conn.url.query
    return conn.url.path + (f"?{query}" if query else "")


def _client(ctx: AppContext, request: Request) -> httpx.AsyncClient:
    """One connection pool to the apps per application (made on first use)."""
    client: httpx.AsyncClient | None = getattr(request.app.state, "web_apps_client", None)
    if client is None:
        # No timeout on reading: a notebook may stream output for as long as it runs.
        client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None), trust_env=False)
        request.app.state.web_apps_client = client
    return client


@router.api_route("/apps/{job_id}", methods=METHODS)
async def to_app_root(job_id: int) -> RedirectResponse:
    """A web app's address without its final slash: the app's relative links need it."""
    return RedirectResponse(app_prefix(job_id), status_code=307)


@router.api_route("/apps/{job_id}/{path:path}", methods=METHODS)
async def proxy_http(request: Request, job_id: int, path: str) -> Response:
    """One HTTP request to a job's web app, streamed both ways."""
    ctx: AppContext = request.app.state.context
    target = await run_in_threadpool(_target, request, ctx, job_id)
    if target is None:
        if "text/html" in request.headers.get("accept", ""):
            return to_signin(request)
        raise Unauthenticated("sign in to the portal, or send 'Authorization: Bearer <token>'")
    client = _client(ctx, request)
    upstream = client.build_request(
        request.method,
        target.address.base + _upstream_path(request),
        headers=request_headers(request.headers.items(), target.secret, target.app),
        content=request.stream(),
    )
    try:
        answer = await client.send(upstream, stream=True)
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(
            f"job {job_id}'s web app does not answer ({type(exc).__name__}); it may still "
            "be starting, try again in a few seconds"
        ) from None
    return StreamingResponse(
        answer.aiter_raw(),
        status_code=answer.status_code,
        headers=dict(response_headers(answer.headers.multi_items())),
        background=BackgroundTask(answer.aclose),
    )


@router.websocket("/apps/{job_id}/{path:path}")
async def proxy_websocket(websocket: WebSocket, job_id: int, path: str) -> None:
    """A WebSocket to a job's web app (a notebook's kernel channel), relayed both ways."""
    ctx: AppContext = websocket.app.state.context
    try:
        target = await run_in_threadpool(_target, websocket, ctx, job_id)
    except FabriekError as refused:
        await websocket.close(code=_POLICY, reason=str(refused)[:120])
        return
    if target is None:
        await websocket.close(code=_POLICY, reason="sign in first")
        return
    url = f"ws://{target.address.host}:{target.address.port}{_upstream_path(websocket)}"
    offered = websocket.scope.get("subprotocols") or None
    headers = request_headers(
        [(k, v) for k, v in websocket.headers.items() if not k.lower().startswith("sec-websocket")],
        target.secret,
        target.app,
    )
    try:
        async with connect(
            url, additional_headers=headers, subprotocols=offered, max_size=None,
            compression=None, open_timeout=10,
        ) as upstream:  # fmt: skip
            await websocket.accept(subprotocol=upstream.subprotocol)
            await _relay(websocket, upstream)
    except (OSError, InvalidHandshake, InvalidStatus, TimeoutError):
        await websocket.close(code=_UNREACHABLE, reason="the web app does not answer")


async def _relay(websocket: WebSocket, upstream: ClientConnection) -> None:
    """Frames both ways until either side closes; then the other is closed too."""

    async def down() -> None:
        async for message in upstream:
            if isinstance(message, bytes):
                await websocket.send_bytes(message)
            else:
                await websocket.send_text(message)

    async def up() -> None:
        while True:
            event = await websocket.receive()
            if event["type"] == "websocket.disconnect":
                return
            data = event.get("bytes")
            await upstream.send(data if data is not None else event.get("text") or "")

    tasks = [asyncio.create_task(down()), asyncio.create_task(up())]
    _done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    with contextlib.suppress(
        ConnectionClosed, RuntimeError, WebSocketDisconnect, asyncio.CancelledError
    ):
        await upstream.close()
        await websocket.close()
