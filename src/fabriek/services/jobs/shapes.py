"""The shapes of the sites' hardware and the projects' references that submissions check
against, cached and renewed when their tables change.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from fabriek.domain.capacity import SiteShape
from fabriek.domain.inputs import is_id
from fabriek.domain.partners import PartnerTerms
from fabriek.services.sites import site_from_row
from fabriek.store.tables import (
    ProjectRow,
    SiteRow,
)
from fabriek.store.watch import TableWatch


def site_shapes(
    session: Session,
    containers: Mapping[str, str] | None = None,
    unstaged: Collection[str] = (),
    partners: Mapping[str, PartnerTerms] | None = None,
) -> list[SiteShape]:
    """Every site's hardware, in registration order, with the container runtime each runs
    images with (`containers`, from the sites file: site -> runtime); the sites in
    `unstaged` cannot hand jobs their datasets (Slurm sites without `dataset_staging`);
    `partners` are the partner factories' sites, with their terms."""
    runtimes = containers or {}
    abroad = partners or {}
    rows = session.scalars(
        select(SiteRow).options(selectinload(SiteRow.node_groups)).order_by(SiteRow.id)
    )
    return [
        SiteShape(
            s.name,
            tuple(g.to_group() for g in s.node_groups),
            s.max_time_s,
            s.grid_limit_kw,
            s.pue,
            s.grid_zone,
            runtimes.get(s.name),
            s.name not in unstaged,
            abroad.get(s.name),
        )
        for s in map(site_from_row, rows)
    ]


class SiteShapeCache:
    """Every site's hardware, read at most every `ttl_s`: submissions check against it
    hundreds of times a second, while sites change a few times a year. A change made in this
    process is seen at once (`invalidate`); one made by another process within `ttl_s`."""

    def __init__(
        self,
        ttl_s: float = 5.0,
        containers: Mapping[str, str] | None = None,
        unstaged: Collection[str] = (),
        partners: Mapping[str, PartnerTerms] | None = None,
    ) -> None:
        """`containers`: the container runtime of each site that declares one; `unstaged`:
        the sites that cannot hand jobs their datasets; `partners`: the partner factories'
        sites."""
        self.ttl_s = ttl_s
        self.containers = dict(containers or {})
        self.unstaged = frozenset(unstaged)
        self.partners = dict(partners or {})
        self._shapes: list[SiteShape] = []
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def get(self, session: Session) -> list[SiteShape]:
        with self._lock:
            if time.monotonic() - self._read_at > self.ttl_s:
                self._shapes = site_shapes(session, self.containers, self.unstaged, self.partners)
                self._read_at = time.monotonic()
            return self._shapes

    def invalidate(self) -> None:
        with self._lock:
            self._read_at = float("-inf")


class ProjectRefCache:
    """Project references (names, or ids as text) to (id, name), as a submission names its
    project: one query saved on every submission. An entry is used for at most `ttl_s`
    seconds; a write to the projects table through this process's engine drops every
    entry at once (`TableWatch`), one made by another process is seen within `ttl_s`.
    Whether the caller may use the project is not cached here: that is the principal's."""

    def __init__(self, watch: TableWatch | None = None, ttl_s: float = 5.0) -> None:
        self.watch = watch
        self.ttl_s = ttl_s
        self.max_entries = 10_000
        self._entries: dict[str, tuple[int, str, int, float]] = {}
        self._lock = threading.Lock()

    def get(self, session: Session, ref: str) -> tuple[int, str] | None:
        """(id, name) of the project `ref` names, or None if there is none."""
        if self.watch is not None and self.ttl_s > 0:
            found = self._entries.get(ref)
            if (
                found is not None
                and found[2] == self.watch.generation
                and time.monotonic() - found[3] <= self.ttl_s
            ):
                return found[0], found[1]
        stamp = self.watch.stamp() if self.watch is not None else None
        read_at = time.monotonic()
        row = session.execute(
            select(ProjectRow.id, ProjectRow.name).where(
                ProjectRow.name == ref if not is_id(ref) else ProjectRow.id == int(ref)
            )
        ).first()
        if row is None:
            return None
        project_id, name = row
        if stamp is not None and self.watch is not None and self.watch.unchanged(stamp):
            with self._lock:
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
                self._entries[ref] = (project_id, name, stamp, read_at)
        return project_id, name
