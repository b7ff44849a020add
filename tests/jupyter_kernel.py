"""Talking to a notebook's Jupyter as JupyterLab does, for tests and benchmarks: start a
kernel over its REST API and run code on its WebSocket channel (the Jupyter messaging
protocol's JSON form), through Fabriek's proxy or straight to the app."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect


def wait_for_lab(c: httpx.Client, job_id: int, timeout: float = 120) -> httpx.Response:
    """JupyterLab's page through the proxy, once the notebook answers (409 while it waits or
    starts, 503 until Jupyter listens)."""
    deadline = time.monotonic() + timeout
    while True:
        page = c.get(f"/apps/{job_id}/lab", headers={"accept": "text/html"})
        if page.status_code not in {409, 503}:
            return page
        assert time.monotonic() < deadline, page.text
        time.sleep(0.1)


def start_kernel(c: httpx.Client, prefix: str) -> str:
    """A new Python kernel of the notebook at `prefix` (`/apps/<id>/`); its id."""
    started = c.post(f"{prefix}api/kernels", json={"name": "python3"})
    assert started.status_code == 201, started.text
    kernel: str = started.json()["id"]
    return kernel


def _message(code: str, session: str) -> dict[str, Any]:
    return {
        "header": {
            "msg_id": uuid.uuid4().hex, "msg_type": "execute_request", "username": "test",
            "session": session, "date": datetime.now(UTC).isoformat(), "version": "5.3",
        },
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {
            "code": code, "silent": False, "store_history": False, "user_expressions": {},
            "allow_stdin": False, "stop_on_error": True,
        },
    }  # fmt: skip


async def execute(ws: ClientConnection, code: str, session: str) -> str:
    """Run `code` on an open kernel channel; what it printed (stdout and stderr)."""
    request = _message(code, session)
    await ws.send(json.dumps(request))
    printed: list[str] = []
    # The reply (shell channel) and the output (iopub) travel apart: the output is whole
    # only once iopub says the kernel went idle after this request, which may come after
    # the reply.
    replied = idle = False
    while not (replied and idle):
        raw = await ws.recv()
        reply = json.loads(raw)
        if reply.get("parent_header", {}).get("msg_id") != request["header"]["msg_id"]:
            continue
        kind = reply["header"]["msg_type"]
        if kind == "stream":
            printed.append(reply["content"]["text"])
        elif kind == "error":
            printed.append("\n".join(reply["content"].get("traceback", [])))
        elif kind == "execute_reply":
            replied = True
        elif kind == "status" and reply["content"].get("execution_state") == "idle":
            idle = True
    return "".join(printed)


def channel_url(base_ws: str, prefix: str, kernel: str) -> str:
    """The kernel's WebSocket channel, under `base_ws` (ws://host:port) and the app's prefix."""
    return f"{base_ws}{prefix}api/kernels/{kernel}/channels?session_id={uuid.uuid4().hex}"


async def run_cell(url: str, headers: dict[str, str], code: str) -> str:
    """Open the kernel channel at `url` with `headers`, run one cell, close; its output."""
    async with connect(url, additional_headers=headers, max_size=None) as ws:
        return await execute(ws, code, uuid.uuid4().hex)
