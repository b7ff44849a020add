"""Publishing usage without singling anyone out: small groups are merged before any figure
of them is shown.

The public dashboard shows usage by province, AI hub, sector and month. A group with fewer
than `MINIMUM_ORGANISATIONS` organisations in it would let anyone who knows the region read
one company's GPU-hours, so such groups are never published alone:

1. every group with enough organisations is published as it is;
2. the small groups are pooled into one "merged" group;
3. a pool that is itself too small is added to the published group with the fewest
   organisations (ties: the first by name), so that no published figure is only the pool's;
4. when even everything together is too small, nothing is published.

The published groups partition what went in (each input group in exactly one, no figure
lost or counted twice), so the published total is the true total and a difference of
published figures is always a sum of whole published groups.

Nested tables (provinces inside hubs) are merged with `merge_within`: the children are
merged inside each published parent, so a hub's figure minus its provinces' is never a
small residue that would identify someone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

MINIMUM_ORGANISATIONS = 3


@dataclass(frozen=True, slots=True)
class Totals:
    """Additive usage figures of a group: GPU-hours, facility energy (kWh), carbon (kg CO2e,
    location-based), water (L) and heat reused (kWh)."""

    gpu_hours: float = 0.0
    kwh: float = 0.0
    kg_co2e: float = 0.0
    litres_water: float = 0.0
    kwh_heat_reused: float = 0.0

    def __add__(self, other: Totals) -> Totals:
        return Totals(
            self.gpu_hours + other.gpu_hours,
            self.kwh + other.kwh,
            self.kg_co2e + other.kg_co2e,
            self.litres_water + other.litres_water,
            self.kwh_heat_reused + other.kwh_heat_reused,
        )


@dataclass(frozen=True, slots=True)
class Group:
    """One group's usage and the organisations behind it."""

    key: str
    organisations: frozenset[str]
    totals: Totals


@dataclass(frozen=True, slots=True)
class Published:
    """A group as it may be shown: the input groups it covers (one, or several merged)."""

    keys: tuple[str, ...]
    organisations: int
    totals: Totals
    merged: bool = field(default=False)


def _combine(groups: Iterable[Group]) -> Group:
    chosen = list(groups)
    totals = Totals()
    organisations: frozenset[str] = frozenset()
    for g in chosen:
        totals = totals + g.totals
        organisations |= g.organisations
    return Group("+".join(g.key for g in chosen), organisations, totals)


def merge_small_groups(
    groups: Iterable[Group], minimum: int = MINIMUM_ORGANISATIONS
) -> list[Published]:
    """The groups as they may be published (see the module): each with at least `minimum`
    organisations. Published groups come in input order, a merged pool last."""
    items = list(groups)
    large = [g for g in items if len(g.organisations) >= minimum]
    small = [g for g in items if len(g.organisations) < minimum]
    out = [Published((g.key,), len(g.organisations), g.totals) for g in large]
    if not small:
        return out
    pool = _combine(small)
    keys = tuple(g.key for g in small)
    if len(pool.organisations) >= minimum:
        return [*out, Published(keys, len(pool.organisations), pool.totals, merged=True)]
    if not large:
        return []
    host_index = min(range(len(large)), key=lambda i: (len(large[i].organisations), large[i].key))
    host = _combine([large[host_index], *small])
    out[host_index] = Published(
        (large[host_index].key, *keys), len(host.organisations), host.totals, merged=True
    )
    return out


def merge_within(
    children: Iterable[Group],
    parent_of: Callable[[str], str],
    parents: Iterable[Published],
    minimum: int = MINIMUM_ORGANISATIONS,
) -> list[Published]:
    """Children (provinces) merged inside each published parent (hub) they belong to, so the
    children of a parent add up to it exactly. Children of unpublished parents are not
    published either."""
    by_parent: dict[str, list[Group]] = {}
    for child in children:
        by_parent.setdefault(parent_of(child.key), []).append(child)
    out: list[Published] = []
    for parent in parents:
        inside = [c for key in parent.keys for c in by_parent.get(key, [])]
        out.extend(merge_small_groups(inside, minimum))
    return out
