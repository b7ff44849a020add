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
    usage). Users of projects without an allocation get the lowest factor, 0.

    Simplified from Slurm: siblings tied on level fair share are ranked by name, and
    the children of tied accounts are not merged."""
    factors: dict[UserKey, float] = {}
    leaves: dict[str, dict[str, float]] = {}  # project -> user -> usage
    for (project, user), used in usage.items():
        if project in allocations:
            leaves.setdefault(project, {})[user] = used.value
        else:
            factors[(project, user)] = 0.0
    for project, user in users:
        if project in allocations:
            leaves.setdefault(project, {}).setdefault(user, 0.0)
        else:
            factors[(project, user)] = 0.0
    projects_of: dict[str, list[str]] = {}
    for project in leaves:
        projects_of.setdefault(allocations[project].organisation, []).append(project)
    project_usage = {p: sum(us.values()) for p, us in leaves.items()}
    orgs = {
        org: (
            sum(allocations[p].shares for p in projects),
            sum(project_usage[p] for p in projects),
        )
        for org, projects in projects_of.items()
    }
    order: list[list[UserKey]] = []
    for org_group in _level_rank(orgs):
        for org in org_group:
            projects = projects_of[org]
            if len(projects) > 1:
                level = {p: (allocations[p].shares, project_usage[p]) for p in projects}
                projects = [p for group in _level_rank(level) for p in group]
            for project in projects:
                users_here = leaves[project]
                if len(users_here) == 1:
                    order.append([(project, u) for u in users_here])
                    continue
                ranked = _level_rank({u: (1.0, used) for u, used in users_here.items()})
                order.extend([(project, u) for u in group] for group in ranked)
    n = sum(len(group) for group in order)
    rank = n
    for group in order:
        for key in group:
            factors[key] = rank / n
        rank -= len(group)
    return factors
