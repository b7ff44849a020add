"""Fair share as Slurm's fair tree computes it: organisation -> project -> user.

Usage decays with a half-life, so what a user ran last month weighs half of what they
ran now (Slurm's PriorityDecayHalfLife, 7 days by default). At each level of the tree,
siblings are ranked by their level fair share, their share of the parent's shares over
their share of the parent's usage; users are then ranked depth first, so a user of an
organisation that used less than its share ranks above every user of one that used more.
A user's factor is 1 for the first and falls evenly to 1/n for the last of n users.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from fabriek.domain.units import GpuHours
from fabriek.scheduler.snapshot import Allocation, UserKey

DEFAULT_HALF_LIFE_S = 7 * 24 * 3600.0


def decay(value: float, elapsed_s: float, half_life_s: float = DEFAULT_HALF_LIFE_S) -> float:
    """`value` after `elapsed_s` seconds of exponential decay with this half-life."""
    return value * math.pow(0.5, elapsed_s / half_life_s)


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """GPU-hours a user of a project used, accounted at time `at_s`."""

    project: str
    user: str
    gpu_hours: GpuHours
    at_s: float


def decayed_usage(
    records: Iterable[UsageRecord], now_s: float, half_life_s: float = DEFAULT_HALF_LIFE_S
) -> dict[UserKey, GpuHours]:
    """Each user's usage decayed to `now_s`: what a snapshot's `usage` holds."""
    totals: dict[UserKey, float] = {}
    for r in records:
        key = (r.project, r.user)
        totals[key] = totals.get(key, 0.0) + decay(r.gpu_hours.value, now_s - r.at_s, half_life_s)
    return {key: GpuHours(v) for key, v in totals.items()}


def _level_rank(
    children: Mapping[str, tuple[float, float]],
) -> list[list[str]]:
    """Children grouped by equal level fair share, best first.

    `children` maps a name to (shares, usage). A child without usage ranks first; a
    child without shares last."""
    if len(children) == 1:
        return [list(children)]
    total_shares = sum(s for s, _ in children.values()) or 1.0
    total_usage = sum(u for _, u in children.values())
    scored: dict[float, list[str]] = {}
    for name, (shares, usage) in children.items():
        s = shares / total_shares
        u = usage / total_usage if total_usage > 0 else 0.0
        level = math.inf if u == 0 and s > 0 else (s / u if u > 0 else 0.0)
        scored.setdefault(round(level, 12), []).append(name)
    return [sorted(scored[k]) for k in sorted(scored, reverse=True)]


def fair_tree_factors(
    allocations: Mapping[str, Allocation],
    usage: Mapping[UserKey, GpuHours],
    users: Iterable[UserKey],
) -> dict[UserKey, float]:
    """The fair-share factor (0..1] of each user in `users` (and of every user with
    usage). Users of projects without an allocation get the lowest factor, 0."""
    tree: dict[str, dict[str, dict[str, float]]] = {}
    known = set(users) | set(usage)
    for project, user in known:
        alloc = allocations.get(project)
        if alloc is None:
            continue
        used = usage.get((project, user))
        tree.setdefault(alloc.organisation, {}).setdefault(project, {})[user] = (
            used.value if used else 0.0
        )
    order: list[list[UserKey]] = []
    orgs = {
        org: (
            sum(allocations[p].shares for p in projects),
            sum(sum(us.values()) for us in projects.values()),
        )
        for org, projects in tree.items()
    }
    for org_group in _level_rank(orgs):
        for org in org_group:
            projects = tree[org]
            level = {p: (allocations[p].shares, sum(us.values())) for p, us in projects.items()}
            for project_group in _level_rank(level):
                for project in project_group:
                    users_here = {u: (1.0, used) for u, used in projects[project].items()}
                    for user_group in _level_rank(users_here):
                        order.append([(project, u) for u in user_group])
    n = sum(len(group) for group in order)
    factors = {key: 0.0 for key in known}
    rank = n
    for group in order:
        for key in group:
            factors[key] = rank / n
        rank -= len(group)
    return factors
