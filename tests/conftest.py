"""Shared fixtures: every API test runs on SQLite and on the real PostgreSQL, over real HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import settings

from fabriek.services.demo.seed import demo_token
from fabriek.settings import Settings
from tests.servers import (
    LiveServer,
    live_server,
    postgres_unavailable,
    prepare,
    throwaway_database,
)

# The machine is shared and noisy: a property test is about what holds, never how fast, so
# no example may fail for taking long (hypothesis's default deadline is 200 ms).
settings.register_profile("fabriek", deadline=None)
settings.load_profile("fabriek")

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh database per run and backend, with the demo factory; dropped afterwards."""
    if request.param == "postgresql" and (reason := postgres_unavailable()):
        pytest.skip(reason)
    with throwaway_database(request.param, tmp_path_factory.mktemp("db")) as url:
        prepare(url)
        yield url


@pytest.fixture(scope="session")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = Settings(
        database_url=database_url,
        state_dir=tmp_path_factory.mktemp("state"),
        dispatch_interval_s=0.2,
    )
    with live_server(settings) as live:
        yield live


Client = Callable[..., httpx.Client]


@pytest.fixture
def client(server: LiveServer) -> Iterator[Client]:
    """`client("maria")`: an HTTP client signed in as a demo user; `client()` anonymous."""
    opened: list[httpx.Client] = []

    def make(username: str | None = None, token: str | None = None) -> httpx.Client:
        secret = token or (demo_token(username).token if username else None)
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        c = httpx.Client(base_url=server.url, headers=headers, timeout=30)
        opened.append(c)
        return c

    yield make
    for c in opened:
        c.close()


@pytest.fixture
def unique(request: pytest.FixtureRequest) -> str:
    """A short name unique to this test and backend, for objects tests create."""
    import hashlib

    return "t" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:10]


def problem_of(response: httpx.Response, status: int) -> dict[str, object]:
    """Assert an RFC 9457 problem document with this status; return it."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert isinstance(body["detail"], str) and body["detail"]
    return dict(body)


REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def browser(server: LiveServer) -> Iterator[Callable[[str], httpx.Client]]:
    """`browser("sanne")`: an HTTP client signed in to the portal by its cookie (the
    Playwright tests under tests/browser/ have a `browser` of their own: a real Chromium)."""
    opened: list[httpx.Client] = []

    def sign_in(username: str) -> httpx.Client:
        c = httpx.Client(base_url=server.url, timeout=30)
        opened.append(c)
        done = c.post("/signin", data={"token": demo_token(username).token, "next": "/home"})
        assert done.status_code == 303, done.text
        return c

    yield sign_in
    for c in opened:
        c.close()
