"""A factory of its own for terms-of-use tests: publishing terms changes what every demo
user may do, which the shared server's other tests must not see. Its store starts with no
terms of use (the demo publishes the factory's version 1, accepted by its people)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete

from fabriek.services.demo.seed import demo_token
from fabriek.settings import Settings
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import TermsAcceptanceRow, TermsRow
from tests.servers import live_server, postgres_unavailable, prepare, throwaway_database


class Factory:
    """A running factory without terms of use, and clients for its demo people."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.opened: list[httpx.Client] = []

    def as_(self, username: str) -> httpx.Client:
        """An API client signed in as a demo user."""
        return self._open({"Authorization": f"Bearer {demo_token(username).token}"})

    def anonymous(self) -> httpx.Client:
        """A client not signed in."""
        return self._open({})

    def browser(self, username: str) -> httpx.Client:
        """A portal client signed in by its cookie."""
        c = self._open({})
        done = c.post("/signin", data={"token": demo_token(username).token, "next": "/home"})
        assert done.status_code == 303, done.text
        return c

    def _open(self, headers: dict[str, str]) -> httpx.Client:
        c = httpx.Client(base_url=self.url, headers=headers, timeout=30)
        self.opened.append(c)
        return c


@contextmanager
def fresh_factory(backend: str, tmp: Path) -> Iterator[Factory]:
    """A demo factory on a throwaway `backend` database, served, without terms of use."""
    if backend == "postgresql" and (reason := postgres_unavailable()):
        pytest.skip(reason)
    with throwaway_database(backend, tmp / "db") as url:
        prepare(url)
        engine = make_engine(url)
        with make_sessions(engine)() as session:
            session.execute(delete(TermsAcceptanceRow))
            session.execute(delete(TermsRow))
            session.commit()
        engine.dispose()
        settings = Settings(database_url=url, state_dir=tmp / "state", dispatch_interval_s=0.2)
        with live_server(settings) as live:
            made = Factory(live.url)
            try:
                yield made
            finally:
                for c in made.opened:
                    c.close()
