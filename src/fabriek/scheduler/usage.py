"""Decayed usage per tenant as a replay runs: what `Snapshot.usage` needs, kept in O(1)
per job start and end.

A running job's usage accrues continuously; its decayed total at time t is
g * c * (1 - 2^(-(t - s) / h)) with c = h / ln 2, so the running jobs of a tenant sum to
A - B * 2^(-t / h), with A and B updated at each start and end. Times are taken
relative to the first start to keep the powers of two in range.
"""

from __future__ import annotations

import math

from fabriek.domain.units import GpuHours
from fabriek.scheduler.snapshot import UserKey


class TenantUsage:
    """GPU-seconds used by each tenant, decayed with half-life `half_life_s`."""

    def __init__(self, half_life_s: float) -> None:
        self.h = half_life_s
        self.c = half_life_s / math.log(2)
        self.origin: float | None = None
        self.done: dict[str, tuple[float, float]] = {}  # tenant -> (value, at time)
        self.a: dict[str, float] = {}
        self.b: dict[str, float] = {}

    def _pow(self, t: float) -> float:
        assert self.origin is not None
        return math.pow(2.0, (t - self.origin) / self.h)

    def start(self, tenant: str, gpus: int, now: float) -> None:
        """A job of `tenant` started on `gpus` GPUs."""
        if self.origin is None:
            self.origin = now
        self.a[tenant] = self.a.get(tenant, 0.0) + gpus * self.c
        self.b[tenant] = self.b.get(tenant, 0.0) + gpus * self.c * self._pow(now)

    def end(self, tenant: str, gpus: int, started: float, now: float) -> None:
        """A job of `tenant` that started at `started` ended (or was stopped) now."""
        self.a[tenant] -= gpus * self.c
        self.b[tenant] -= gpus * self.c * self._pow(started)
        used = gpus * self.c * (1.0 - math.pow(2.0, -(now - started) / self.h))
        value, at = self.done.get(tenant, (0.0, now))
        self.done[tenant] = (value * math.pow(2.0, -(now - at) / self.h) + used, now)

    def snapshot(self, now: float) -> dict[UserKey, GpuHours]:
        """Each tenant's decayed usage at `now`, keyed as (project, user) = (tenant, tenant)."""
        result: dict[UserKey, GpuHours] = {}
        inverse = 1.0 / self._pow(now) if self.origin is not None else 0.0
        for tenant in self.a.keys() | self.done.keys():
            value, at = self.done.get(tenant, (0.0, now))
            total = value * math.pow(2.0, -(now - at) / self.h)
            total += max(0.0, self.a.get(tenant, 0.0) - self.b.get(tenant, 0.0) * inverse)
            result[(tenant, tenant)] = GpuHours(total / 3600.0)
        return result
