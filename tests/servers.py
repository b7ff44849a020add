"""Real servers for tests: a throwaway database per run and the app on a loopback port."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import uvicorn

from fabriek.server.app import build_app
from fabriek.services.demo import seed
from fabriek.settings import Settings
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.migrate import upgrade

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used here, or None when it can."""
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL at 127.0.0.1:5432 is not reachable ({exc}); start it and rerun"


@contextmanager
def throwaway_database(kind: str, tmp: Path) -> Iterator[str]:
    """A fresh, empty database URL of this kind, dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp / f'fabriek-{uuid.uuid4().hex[:8]}.db'}"
        return
    name = f"fabriek_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def prepare(url: str, with_demo: bool = True) -> None:
    """Migrate, and load the demo factory."""
    engine = make_engine(url)
    upgrade(engine)
    if with_demo:
        with make_sessions(engine)() as session:
            seed.load_demo(session, datetime.now(UTC))
    engine.dispose()


@dataclass
class LiveServer:
    url: str
    settings: Settings


@contextmanager
def live_server(settings: Settings) -> Iterator[LiveServer]:
    """The full app (API and portal) served by uvicorn in a thread, on a free port.

    Rate limits a test does not set are off: every test's users share one address
    (loopback), and a worker's tests share one server, so the limits would count the whole
    suite as one caller (tests/test_rate_limits.py sets its own, and checks that the
    defaults let a busy user through)."""
    for name in Settings.model_fields:
        rate = name.startswith("rate_limit_") and name.endswith(("_per_s", "_per_min"))
        if rate and name not in settings.model_fields_set:
            setattr(settings, name, 0.0)
    settings.port = free_port()
    app = build_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield LiveServer(f"http://127.0.0.1:{settings.port}", settings)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        app.state.context.engine.dispose()


def spawn_serve(env: dict[str, str], port: int, *args: str) -> subprocess.Popen[bytes]:
    """`fabriek serve` as its own process (so it can be killed), once `/readyz` answers."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "fabriek.main", "serve", "--port", str(port), *args],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    # Generous: on a loaded machine (CI's two cores, shared) a start can take most of a minute.
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError(f"fabriek serve did not become ready (exit {proc.poll()})")
        time.sleep(0.05)
