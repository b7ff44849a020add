"""What the gateway keeps in memory between requests: key facts by hash, endpoint routes,
outstanding requests per replica and each key's one-minute window.

A key is read from the store at most every `KEY_TTL_S` seconds: a revoked key is refused
within that bound (by every gateway process). A route is read at most every `ROUTE_TTL_S`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from fabriek.domain.gateway import MinuteWindow

KEY_TTL_S = 2.0
ROUTE_TTL_S = 1.0

T = TypeVar("T")


@dataclass
class _Entry(Generic[T]):
    value: T
    read_at: float


class TtlCache(Generic[T]):
    """A dictionary whose entries are good for `ttl_s` seconds (monotonic clock)."""

    def __init__(self, ttl_s: float, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[object, _Entry[T]] = {}

    def get(self, key: object) -> tuple[bool, T | None]:
        """(True, value) when a fresh entry is held, else (False, None)."""
        found = self._entries.get(key)
        if found is None or time.monotonic() - found.read_at > self.ttl_s:
            return False, None
        return True, found.value

    def put(self, key: object, value: T) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = _Entry(value, time.monotonic())

    def drop(self, key: object) -> None:
        self._entries.pop(key, None)


class Outstanding:
    """Requests in flight per replica, for least-outstanding routing."""

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}

    def pick(self, replica_ids: list[int]) -> int:
        """The replica with the fewest requests in flight (the first of equals)."""
        return min(replica_ids, key=lambda r: self._counts.get(r, 0))

    def start(self, replica_id: int) -> None:
        self._counts[replica_id] = self._counts.get(replica_id, 0) + 1

    def end(self, replica_id: int) -> None:
        left = self._counts.get(replica_id, 1) - 1
        if left <= 0:
            self._counts.pop(replica_id, None)
        else:
            self._counts[replica_id] = left


class Windows:
    """Each key's one-minute window, in this process (with N gateway processes, a key's
    per-minute limits hold per process: N times the limit at most in all)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._windows: dict[int, MinuteWindow] = {}

    def admit(self, key_id: int, rpm: int | None, tpm: int | None) -> float | None:
        """None when the request may go; else seconds to wait (Retry-After)."""
        if rpm is None and tpm is None:
            return None
        with self._lock:
            return self._windows.setdefault(key_id, MinuteWindow()).admit(self.clock(), rpm, tpm)

    def add_tokens(self, key_id: int, tokens: int) -> None:
        with self._lock:
            window = self._windows.get(key_id)
            if window is not None:
                window.add_tokens(self.clock(), tokens)
