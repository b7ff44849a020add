"""The control plane pulls each Slurm site's accounting, now and then, off the cycle's path.

Sites whose engine can read their accounting (`slurmrestd`: `GET /slurmdb/.../jobs`;
`slurm`: `sacct`) are pulled at most every `every_s` seconds each, in a thread of their
own, so a slow slurmdbd never holds up a scheduling cycle. A pull asks for the records
since the site's cursor less the look-back (the last 30 days the first time), ingests them
in one transaction and moves the cursor to when it asked. A site whose accounting cannot
be read (slurmdbd down, slurmrestd without the dbv plugin) is tried again next time; its
cursor stays, so nothing is lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Protocol, runtime_checkable

from sqlalchemy.orm import Session, sessionmaker

from fabriek.domain.access.tracks import AccessConfig
from fabriek.domain.errors import InvalidInput, ServiceUnavailable
from fabriek.domain.slurm_accounting import AccountingRecord
from fabriek.engines.base import Engine, EngineUnavailable
from fabriek.services.jobs import harvest
from fabriek.services.jobs.harvest import HarvestResult

log = logging.getLogger("fabriek.harvest")


@runtime_checkable
class ReadsAccounting(Protocol):
    """An engine that can read its site's accounting."""

    def read_accounting(self, since: datetime | None) -> list[AccountingRecord]: ...


class AccountingPull:
    """Pulls the accounting of every site whose engine reads it, each at most every
    `every_s` seconds, one site at a time in a background thread."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        engine_of: Callable[[str], Engine],
        clock: Callable[[], datetime],
        access: AccessConfig,
        tag_prefix: str,
        every_s: float,
    ) -> None:
        self.sessions = sessions
        self.engine_of = engine_of
        self.clock = clock
        self.access = access
        self.tag_prefix = tag_prefix
        self.every_s = every_s
        self._last: dict[str, float] = {}
        self._running: Future[None] | None = None
        self._lock = threading.Lock()
        self._pulling = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="harvest")
        self.errors: dict[str, str] = {}

    def tick(self, sites: Iterable[str]) -> bool:
        """Start a round over the sites that are due, unless one is still running; whether
        one started. Returns at once."""
        now = time.monotonic()
        with self._lock:
            if self._running is not None and not self._running.done():
                return False
            due = [s for s in sites if now - self._last.get(s, float("-inf")) >= self.every_s]
            if not due:
                return False
            for site in due:
                self._last[site] = now
            self._running = self._pool.submit(self._round, due)
            return True

    def _round(self, sites: list[str]) -> None:
        for site in sites:
            try:
                self.pull(site)
            except Exception:  # one site's failure must not stop the others' harvest
                log.exception("harvesting the accounting of %s failed", site)

    def pull(self, site: str) -> HarvestResult | None:
        """Harvest one site now: None when its engine reads no accounting or its
        accounting cannot be read (why is in `errors`)."""
        try:
            return self.pull_now(site)
        except ServiceUnavailable as error:
            log.warning("harvest of %s: %s; trying again later", site, error)
            return None
        except InvalidInput:
            return None

    def pull_now(self, site: str) -> HarvestResult:
        """Harvest one site now (one at a time in this process). InvalidInput when its
        engine reads no accounting, ServiceUnavailable when the accounting cannot be read;
        the cursor then stays where it was."""
        engine = self.engine_of(site)
        if not isinstance(engine, ReadsAccounting):
            raise InvalidInput(
                f"site {site}'s engine reads no Slurm accounting: its agent pushes it "
                "(POST /api/v1/sites/{site}/agent/accounting), or bind it to slurmrestd"
            )
        with self._pulling:
            with self.sessions() as session:
                since = harvest.since(session, site)
            asked_at = self.clock()
            # A site's first harvest: its last month, not its whole history in one go.
            since = since or asked_at - harvest.FIRST_LOOK_BACK
            try:
                records = engine.read_accounting(since)
            except EngineUnavailable as error:
                self.errors[site] = str(error)
                raise ServiceUnavailable(
                    f"{error}; the harvest tries again later and loses nothing"
                ) from None
            self.errors.pop(site, None)
            with self.sessions() as session:
                result = harvest.ingest(
                    session, site, records, self.clock(), access=self.access,
                    tag_prefix=self.tag_prefix, through=asked_at,
                )  # fmt: skip
                session.commit()
        if result.added or result.corrected:
            log.info("harvest of %s: %s", site, result.to_json())
        return result

    def wait(self, timeout_s: float | None = None) -> None:
        """Wait for the round in flight, if any (tests, shutdown)."""
        running = self._running
        if running is not None:
            running.result(timeout=timeout_s)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
