"""Noticing writes to some tables, so that in-process caches of them stay right.

A `TableWatch` counts the writes (insert, update, delete) that go through one engine to a
set of tables. A cache built on it takes a `stamp()` before it reads the store and keeps
what it read only if `unchanged(stamp)` afterwards; an entry is good while the watch's
`generation` is the one it was read at. So a write made through this engine is seen by the
next request, including one still in flight when it committed: while a transaction that
wrote to a watched table is open (until its connection goes back to the pool, which is
after its commit or rollback), nothing read is kept.

Writes through other engines or other processes are not seen: caches built on this still
need a time limit, which bounds how long such a write can go unnoticed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy.sql.dml import UpdateBase


class TableWatch:
    """Writes to `tables` through `engine`: a generation and the transactions still open."""

    def __init__(self, engine: Engine, tables: Iterable[str]) -> None:
        self.tables = frozenset(tables)
        self.generation = 0
        self._open = 0
        self._lock = threading.Lock()
        self._flag = f"fabriek.watch.{id(self)}"
        event.listen(engine, "after_execute", self._after_execute)
        event.listen(engine, "rollback", self._rollback)
        event.listen(engine, "checkin", self._checkin)
        event.listen(engine, "invalidate", self._invalidated)

    def stamp(self) -> int | None:
        """Before reading: the generation, or None while a write is under way."""
        with self._lock:
            return None if self._open else self.generation

    def unchanged(self, stamp: int | None) -> bool:
        """After reading: whether what was read since `stamp()` may be kept."""
        with self._lock:
            return stamp is not None and not self._open and stamp == self.generation

    # -- engine events ------------------------------------------------------------------

    def _after_execute(self, conn: Connection, clause: Any, *_args: Any) -> None:
        if not isinstance(clause, UpdateBase):
            return
        if getattr(clause.table, "name", None) not in self.tables:
            return
        with self._lock:
            self.generation += 1
            if not conn.info.get(self._flag):
                conn.info[self._flag] = True
                self._open += 1

    def _end(self, info: dict[Any, Any]) -> None:
        if info.pop(self._flag, None):
            with self._lock:
                self._open -= 1
                self.generation += 1

    def _rollback(self, conn: Connection) -> None:
        # A connection the database dropped (a restart) was ended by `_invalidated`; asking
        # for its info now would raise instead of rolling back.
        if conn.invalidated:
            return
        self._end(conn.info)

    def _checkin(self, _dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            self._end(record.info)

    def _invalidated(self, _dbapi_connection: Any, record: Any, _exc: Any) -> None:
        if record is not None:  # a broken connection's transaction is over too
            self._end(record.info)
