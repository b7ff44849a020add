"""Usage of endpoints, gathered in memory by the gateway and written in batches.

Each flush takes what was gathered (the buffer starts empty again at once) and adds it to
`endpoint_usage` with one atomic upsert per (endpoint, caller, day): `requests =
requests + n`, so that several gateway processes add up and nothing is counted twice. A
flush that fails puts its deltas back for the next one. What a crash of the process can
lose at most: the usage of the last flush interval (about a second), never more.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from fabriek.domain.gateway import UsageDelta, UsageKey
from fabriek.store.tables.endpoints import EndpointKeyRow, EndpointRow, EndpointUsageRow


class Meter:
    """Usage not yet written, per (endpoint, caller, day); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[UsageKey, UsageDelta] = {}
        self._keys_used: dict[int, datetime] = {}
        self._endpoints_used: dict[int, datetime] = {}

    def add(self, key: UsageKey, delta: UsageDelta, at: datetime) -> None:
        """Count a finished request."""
        with self._lock:
            self._pending.setdefault(key, UsageDelta()).add(delta)
            if key.key_id is not None:
                self._keys_used[key.key_id] = at
            self._endpoints_used[key.endpoint_id] = at

    def pending_tokens(self, key_id: int) -> int:
        """Tokens of this key not yet written (for the monthly budget between flushes)."""
        with self._lock:
            return sum(
                d.prompt_tokens + d.completion_tokens
                for k, d in self._pending.items()
                if k.key_id == key_id
            )

    def pending(self) -> int:
        """Usage rows gathered and not yet written (one per endpoint, caller and day): a
        number that grows only while flushes fail."""
        with self._lock:
            return len(self._pending)

    def _take(self) -> tuple[dict[UsageKey, UsageDelta], dict[int, datetime], dict[int, datetime]]:
        with self._lock:
            taken = self._pending, self._keys_used, self._endpoints_used
            self._pending, self._keys_used, self._endpoints_used = {}, {}, {}
        return taken

    def _put_back(self, pending: dict[UsageKey, UsageDelta]) -> None:
        with self._lock:
            for key, delta in pending.items():
                self._pending.setdefault(key, UsageDelta()).add(delta)

    def flush(self, sessions: Callable[[], Session]) -> int:
        """Write what was gathered; the number of rows upserted."""
        pending, keys_used, endpoints_used = self._take()
        if not pending and not keys_used:
            return 0
        try:
            with sessions() as session:
                for key, delta in pending.items():
                    _upsert(session, key, delta)
                for key_id, at in keys_used.items():
                    session.execute(
                        update(EndpointKeyRow)
                        .where(EndpointKeyRow.id == key_id)
                        .values(last_used_at=at)
                    )
                for endpoint_id, at in endpoints_used.items():
                    session.execute(
                        update(EndpointRow)
                        .where(EndpointRow.id == endpoint_id)
                        .values(last_request_at=at)
                    )
                session.commit()
        except Exception:
            self._put_back(pending)
            raise
        return len(pending)


def _upsert(session: Session, key: UsageKey, delta: UsageDelta) -> None:
    values = {
        "endpoint_id": key.endpoint_id, "project_id": key.project_id, "caller": key.caller,
        "key_id": key.key_id, "user_id": key.user_id, "day": key.day,
        "requests": delta.requests, "failed_requests": delta.failed_requests,
        "prompt_tokens": delta.prompt_tokens, "completion_tokens": delta.completion_tokens,
    }  # fmt: skip
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(EndpointUsageRow).values(**values)
    table = EndpointUsageRow.__table__.c
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.endpoint_id, table.caller, table.day],
        set_={
            "requests": table.requests + stmt.excluded.requests,
            "failed_requests": table.failed_requests + stmt.excluded.failed_requests,
            "prompt_tokens": table.prompt_tokens + stmt.excluded.prompt_tokens,
            "completion_tokens": table.completion_tokens + stmt.excluded.completion_tokens,
        },
    )
    session.execute(stmt)
