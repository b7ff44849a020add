"""The gateway against the model server called directly, in one run: added latency (p50,
p99) and throughput of small non-streamed requests, and time to first token streamed.

The model server is `python -m fabriek.model_server` on the tests' tiny NumPy model (built
locally by tests/model_fixtures.py), or with `--standin` the tests' stand-in OpenAI server
(no model: it echoes). Fabriek runs in its own process (SQLite demo factory) with the
gateway's resolver pointed at that server (the route a healthy replica would give); an
endpoint key with no limits is created through the API. The load generator is a minimal
HTTP/1.1 keep-alive client on raw asyncio streams, the same for both paths, so that what
differs is the gateway alone.

    .venv/bin/python -m bench.gateway --requests 2000 --seconds 10 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from tests.servers import free_port, prepare, throwaway_database

from bench.api_load import machine_description

# A streamed chunk that carries text (not the role-only first chunk some servers send).
TOKEN = re.compile(rb'"(?:content|text)":\s*"[^"]')
STANDIN = Path(__file__).resolve().parent.parent / "tests" / "openai_standin.py"


class Conn:
    """One keep-alive HTTP/1.1 connection that sends a POST and reads the whole answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def post(self, request: bytes, first_byte_only: bool = False) -> float:
        """Seconds to the whole answer (or to its first body bytes)."""
        started = time.perf_counter()
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.decode(errors="replace"))
        length = None
        chunked = False
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
            elif name.lower() == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if length is not None:
            await self.reader.readexactly(length)
            return time.perf_counter() - started
        assert chunked
        first: float | None = None
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
            data = await self.reader.readexactly(size + 2)
            if first is None and TOKEN.search(data):
                first = time.perf_counter() - started
            if size == 0:
                return (
                    first
                    if first_byte_only and first is not None
                    else time.perf_counter() - started
                )


def request(path: str, body: dict[str, Any], secret: str) -> bytes:
    raw = json.dumps(body).encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {secret}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n\r\n"
    ).encode() + raw


async def latencies(port: int, req: bytes, n: int, first_byte: bool = False) -> list[float]:
    conn = await Conn.open(port)
    for _ in range(20):
        await conn.post(req)
    out = [await conn.post(req, first_byte) for _ in range(n)]
    conn.writer.close()
    return out


async def throughput(port: int, req: bytes, seconds: float, concurrency: int) -> float:
    conns = [await Conn.open(port) for _ in range(concurrency)]
    done = 0
    stop = time.perf_counter() + seconds

    async def worker(conn: Conn) -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await conn.post(req)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - started
    for c in conns:
        c.writer.close()
    return done / elapsed


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def serve(args: argparse.Namespace) -> None:
    """The gateway's process: the whole app, its resolver pointed at the model server."""
    import uvicorn

    from fabriek.server.app import build_app
    from fabriek.services.endpoints.routing import EndpointRoute, ReplicaTarget
    from fabriek.settings import Settings
    from fabriek.store.db import make_sessions
    from fabriek.store.tables import ProjectRow
    from fabriek.store.tables.endpoints import EndpointRow

    settings = Settings(database_url=args.db, state_dir=Path(args.state), port=args.port)
    app = build_app(settings)
    with make_sessions(app.state.context.engine)() as session:
        project = session.query(ProjectRow).filter_by(name="dutch-llm").one()
        row = EndpointRow(
            project_id=project.id, name="tiny", model=args.model, min_replicas=0, max_replicas=0
        )
        session.add(row)
        session.commit()
        route = EndpointRoute(
            row.id, project.id, "tiny", args.model,
            (ReplicaTarget(1, row.id, 0, args.upstream, args.secret, args.model),),
        )  # fmt: skip
    app.state.gateway.resolve = lambda _endpoint, _project: route
    uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
    ).run()


def wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--standin", action="store_true", help="the stand-in server, no model")
    parser.add_argument("mode", nargs="?", default="bench")
    (
        parser.add_argument("--db"),
        parser.add_argument("--state"),
        parser.add_argument("--port", type=int),
    )
    parser.add_argument("--upstream"), parser.add_argument("--secret", default="")
    parser.add_argument("--model", default="tiny")
    args = parser.parse_args()
    if args.mode == "serve":
        serve(args)
        return
    asyncio.run(run(args))


async def run(args: argparse.Namespace) -> None:
    from fabriek.services.demo.seed import demo_token

    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        if args.standin:
            port = free_port()
            up = subprocess.Popen([sys.executable, str(STANDIN), str(port)])
            stack.callback(up.terminate)
            upstream, secret, model, kind = (
                f"http://127.0.0.1:{port}",
                "",
                "tiny",
                "stand-in (echo, no model)",
            )
            wait_up(upstream + "/health", up)
        else:
            from tests.model_fixtures import model_server, tiny_model

            running = stack.enter_context(model_server(tiny_model(), max_running=16))
            upstream, secret, model, kind = (
                running.base_url,
                running.secret,
                running.name,
                "fabriek.model_server, tiny NumPy model",
            )
        url = stack.enter_context(throwaway_database("sqlite", Path(tmp)))
        prepare(url)
        gw_port = free_port()
        gw = subprocess.Popen(
            [sys.executable, "-m", "bench.gateway", "serve", "--db", url, "--state", tmp,
             "--port", str(gw_port), "--upstream", upstream, "--secret", secret, "--model", model],
            env=dict(os.environ),
        )  # fmt: skip
        stack.callback(gw.terminate)
        wait_up(f"http://127.0.0.1:{gw_port}/healthz", gw)
        token = demo_token("pieter").token
        created = httpx.post(
            f"http://127.0.0.1:{gw_port}/api/v1/projects/dutch-llm/endpoint-keys",
            json={"name": "bench"}, headers={"Authorization": f"Bearer {token}"}, timeout=30,
        )  # fmt: skip
        created.raise_for_status()
        key = created.json()["key"]
        up_port = int(upstream.rsplit(":", 1)[1])
        small = {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 1}
        direct = request("/v1/chat/completions", {**small, "model": model}, secret)
        through = request("/v1/chat/completions", {**small, "model": "tiny"}, key)
        stream_body = {
            "messages": [{"role": "user", "content": "Hello"}],
            "max_tokens": 16,
            "stream": True,
        }
        direct_s = request("/v1/chat/completions", {**stream_body, "model": model}, secret)
        through_s = request("/v1/chat/completions", {**stream_body, "model": "tiny"}, key)
        d = await latencies(up_port, direct, args.requests)
        g = await latencies(gw_port, through, args.requests)
        d_tp = await throughput(up_port, direct, args.seconds, args.concurrency)
        g_tp = await throughput(gw_port, through, args.seconds, args.concurrency)
        n_ttft = max(50, args.requests // 10)
        d_ttft = await latencies(up_port, direct_s, n_ttft, first_byte=True)
        g_ttft = await latencies(gw_port, through_s, n_ttft, first_byte=True)
        usage = httpx.get(
            f"http://127.0.0.1:{gw_port}/api/v1/projects/dutch-llm/endpoint-usage",
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        results = {"direct": d, "gateway": g, "direct_tp": d_tp, "gateway_tp": g_tp,
                   "direct_ttft": d_ttft, "gateway_ttft": g_ttft}  # fmt: skip
        report(args, kind, results, sum(r["requests"] for r in usage), len(usage))


def report(args: argparse.Namespace, kind: str, r: dict[str, Any], metered: int, rows: int) -> None:
    """The run's figures, for docs/benchmarks.md."""
    d, g, d_ttft, g_ttft = r["direct"], r["gateway"], r["direct_ttft"], r["gateway_ttft"]
    d_tp, g_tp, n_ttft = r["direct_tp"], r["gateway_tp"], len(r["direct_ttft"])
    print("\n".join(machine_description()))
    print(f"Model server: {kind}")
    print(f"Small non-streamed chat completions (max_tokens 1), {args.requests} one at a time:")
    print(f"  direct   p50 {pct(d, 0.5):7.2f} ms  p99 {pct(d, 0.99):7.2f} ms")
    print(f"  gateway  p50 {pct(g, 0.5):7.2f} ms  p99 {pct(g, 0.99):7.2f} ms")
    print(
        f"  added    p50 {pct(g, 0.5) - pct(d, 0.5):7.2f} ms  p99 {pct(g, 0.99) - pct(d, 0.99):7.2f} ms"
    )
    print(f"Throughput, {args.concurrency} keep-alive connections for {args.seconds:.0f} s:")
    print(f"  direct  {d_tp:8.0f} requests/s")
    print(f"  gateway {g_tp:8.0f} requests/s")
    print(f"Time to first token (streamed, max_tokens 16), {n_ttft} one at a time:")
    print(f"  direct   p50 {pct(d_ttft, 0.5):7.2f} ms  p99 {pct(d_ttft, 0.99):7.2f} ms")
    print(f"  gateway  p50 {pct(g_ttft, 0.5):7.2f} ms  p99 {pct(g_ttft, 0.99):7.2f} ms")
    print(f"Requests metered: {metered} (in usage rows: {rows})")


if __name__ == "__main__":
    main()
