"""Group commit for submissions: many checked jobs written in one transaction.

Under load, each submission's own commit (a WAL flush on PostgreSQL, a transaction's
round trips) is most of what the store costs it. One writer thread takes whatever
submissions are waiting, writes them with one multi-row INSERT and one commit, and only
then answers each: a 201 still means the job is durably stored. A lone submission waits for
no one (the writer never holds a batch open for more to arrive). If a batch fails, each of
its submissions is written on its own, so one bad row cannot fail the others.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future

from sqlalchemy.orm import Session

from fabriek.domain.jobs import Job
from fabriek.services.jobs.submit import PreparedJob, write_jobs

log = logging.getLogger("fabriek.submissions")

# More than this many waiting submissions are written in the next batch.
MAX_BATCH = 256

_Item = tuple[PreparedJob, "Future[Job]"]


class SubmissionWriter:
    """One thread that writes checked submissions in batches (see the module)."""

    def __init__(self, sessions: Callable[[], Session], start: bool = True) -> None:
        """`start=False` leaves the thread for `start()`: submissions queue up meanwhile."""
        self.sessions = sessions
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="submission-writer", daemon=True)
        if start:
            self._thread.start()

    def start(self) -> None:
        self._thread.start()

    @property
    def waiting(self) -> int:
        """Submissions queued and not yet taken by the writer."""
        return self._queue.qsize()

    def write(self, job: PreparedJob) -> Job:
        """Write one submission (with whatever else is waiting); its job once committed."""
        done: Future[Job] = Future()
        self._queue.put((job, done))
        return done.result()

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._write(batch)
            if stop:
                return

    def _write(self, batch: list[_Item]) -> None:
        try:
            with self.sessions() as session:
                jobs = write_jobs(session, [p for p, _ in batch])
        except Exception as error:  # handed to the waiting request, which answers with it
            if len(batch) == 1:
                batch[0][1].set_exception(error)
                return
            log.warning("a batch of %d submissions failed; writing them one by one", len(batch))
            for item in batch:
                self._write([item])
            return
        for (_, done), job in zip(batch, jobs, strict=True):
            done.set_result(job)
