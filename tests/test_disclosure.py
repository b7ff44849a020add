"""Small groups merged before publishing: properties of `domain.disclosure`."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from fabriek.domain.disclosure import (
    MINIMUM_ORGANISATIONS,
    Group,
    Published,
    Totals,
    merge_small_groups,
    merge_within,
)

ORGS = [f"org{i}" for i in range(9)]
PARENT = {f"c{i}": f"p{i % 4}" for i in range(12)}  # twelve children in four parents

totals = st.builds(
    Totals,
    *[st.floats(min_value=0, max_value=1e6, allow_nan=False) for _ in range(5)],
)


def groups_of(keys: list[str]) -> st.SearchStrategy[list[Group]]:
    return st.lists(
        st.tuples(st.sampled_from(keys), st.frozensets(st.sampled_from(ORGS), min_size=1), totals),
        unique_by=lambda t: t[0],
    ).map(lambda rows: [Group(k, o, t) for k, o, t in rows])


def close(a: Totals, b: Totals) -> bool:
    return all(
        math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-6)
        for x, y in zip(
            (a.gpu_hours, a.kwh, a.kg_co2e, a.litres_water, a.kwh_heat_reused),
            (b.gpu_hours, b.kwh, b.kg_co2e, b.litres_water, b.kwh_heat_reused),
            strict=True,
        )
    )


def total(items: list[Group] | list[Published]) -> Totals:
    out = Totals()
    for g in items:
        out = out + g.totals
    return out


def organisations_in(groups: list[Group], keys: tuple[str, ...]) -> frozenset[str]:
    return frozenset().union(*(g.organisations for g in groups if g.key in keys))


@given(groups_of([f"g{i}" for i in range(8)]))
def test_every_published_group_has_enough_organisations(groups: list[Group]) -> None:
    for p in merge_small_groups(groups):
        assert p.organisations >= MINIMUM_ORGANISATIONS
        assert p.organisations == len(organisations_in(groups, p.keys))


@given(groups_of([f"g{i}" for i in range(8)]))
def test_published_groups_partition_the_input_or_nothing_is_published(
    groups: list[Group],
) -> None:
    published = merge_small_groups(groups)
    everyone = organisations_in(groups, tuple(g.key for g in groups))
    if not published:
        # Only when everything together is too small to show.
        assert len(everyone) < MINIMUM_ORGANISATIONS
        return
    keys = [k for p in published for k in p.keys]
    assert sorted(keys) == sorted(g.key for g in groups)  # each group exactly once
    assert close(total(published), total(groups))  # nothing lost, nothing counted twice


@given(groups_of([f"g{i}" for i in range(8)]))
def test_a_group_published_alone_keeps_its_figures(groups: list[Group]) -> None:
    by_key = {g.key: g for g in groups}
    for p in merge_small_groups(groups):
        if not p.merged:
            assert len(p.keys) == 1 and p.totals == by_key[p.keys[0]].totals


@given(groups_of([f"g{i}" for i in range(8)]))
def test_large_groups_are_never_merged_with_each_other_except_to_hide_a_pool(
    groups: list[Group],
) -> None:
    large = {g.key for g in groups if len(g.organisations) >= MINIMUM_ORGANISATIONS}
    hosts = [p for p in merge_small_groups(groups) if len(large & set(p.keys)) > 1]
    assert not hosts


@given(groups_of([f"g{i}" for i in range(8)]))
def test_merging_what_was_published_changes_nothing(groups: list[Group]) -> None:
    once = merge_small_groups(groups)
    as_groups = [Group("+".join(p.keys), organisations_in(groups, p.keys), p.totals) for p in once]
    again = merge_small_groups(as_groups)
    assert [p.totals for p in again] == [p.totals for p in once]


@given(groups_of(sorted(PARENT)))
def test_children_add_up_to_their_published_parent(children: list[Group]) -> None:
    parents: dict[str, list[Group]] = {}
    for c in children:
        parents.setdefault(PARENT[c.key], []).append(c)
    parent_groups = [
        Group(p, frozenset().union(*(c.organisations for c in cs)), total(cs))
        for p, cs in sorted(parents.items())
    ]
    published_parents = merge_small_groups(parent_groups)
    published_children = merge_within(children, PARENT.__getitem__, published_parents)
    for p in published_children:
        assert p.organisations >= MINIMUM_ORGANISATIONS
    for parent in published_parents:
        inside = [c for c in published_children if all(PARENT[k] in parent.keys for k in c.keys)]
        # No residue: a published parent is exactly the sum of its published children.
        assert close(total(inside), parent.totals)
    shown = sorted(k for c in published_children for k in c.keys)
    hidden_parents = {g.key for g in parent_groups} - {k for p in published_parents for k in p.keys}
    assert shown == sorted(c.key for c in children if PARENT[c.key] not in hidden_parents)


def test_a_small_pool_joins_the_smallest_published_group() -> None:
    t = Totals(gpu_hours=1.0)
    groups = [
        Group("big", frozenset({"a", "b", "c", "d"}), t),
        Group("medium", frozenset({"e", "f", "g"}), t),
        Group("tiny", frozenset({"h"}), t),
    ]
    published = merge_small_groups(groups)
    assert [p.keys for p in published] == [("big",), ("medium", "tiny")]
    assert published[1].merged and published[1].organisations == 4
    assert published[1].totals.gpu_hours == 2.0


def test_small_groups_together_may_stand_as_one() -> None:
    t = Totals(kwh=5.0)
    groups = [Group(k, frozenset({k}), t) for k in ("x", "y", "z")]
    assert merge_small_groups(groups) == [Published(("x", "y", "z"), 3, Totals(kwh=15.0), True)]
