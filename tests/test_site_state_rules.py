"""A site's desired state from plain facts: stable whatever order the facts come in, an
allocation spent or expired gives its account 0 GPU-minutes, a person out of a project has
no association with it, and a person out of every project is locked."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from fabriek.domain.site_state import DesiredState, SlurmAssociation
from fabriek.domain.site_state_rules import (
    AllocationFacts,
    PersonFacts,
    ProjectFacts,
    SiteFacts,
    TrackFacts,
    desired_state,
    raw_gpu_minutes,
)

NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)
SITE = SiteFacts(name="groningen", cluster="groningen", gpu_factor=1.4, max_wall_minutes=10080)
TRACKS = [TrackFacts("playground", 0, True), TrackFacts("fast-lane", 1, False)]
PROJECTS = [ProjectFacts(i, f"p{i}", 2_000_000_000 + i, f"Project {i}") for i in range(1, 6)]

people = st.lists(
    st.builds(
        PersonFacts,
        username=st.sampled_from([f"user{i}" for i in range(20)]),
        uid=st.integers(1000, 2000),
        project_ids=st.frozensets(st.integers(1, 6), max_size=3),
        ssh_keys=st.lists(st.sampled_from(["ssh-ed25519 AAAA a", "ssh-ed25519 AAAB b"])).map(tuple),
    ),
    unique_by=lambda p: p.username,
    max_size=8,
)
allocations = st.lists(
    st.builds(
        AllocationFacts,
        project_id=st.integers(1, 6),
        track=st.sampled_from(["playground", "fast-lane", "retired-track"]),
        gpu_hours=st.floats(0, 1e5),
        charged_gpu_hours=st.floats(0, 1e5),
        sites=st.sampled_from([frozenset(), frozenset({"groningen"}), frozenset({"eindhoven"})]),
        starts_at=st.sampled_from([NOW - timedelta(days=30), NOW + timedelta(days=1)]),
        ends_at=st.sampled_from([NOW - timedelta(days=1), NOW + timedelta(days=30)]),
    ),
    max_size=8,
)


def build(persons: list[PersonFacts], allocs: list[AllocationFacts]) -> DesiredState:
    return desired_state(SITE, persons, PROJECTS, allocs, TRACKS, NOW, "ssh-ed25519 AAAA ca")


@given(people, allocations, st.randoms(use_true_random=False))
def test_the_state_is_the_same_whatever_order_the_facts_come_in(
    persons: list[PersonFacts], allocs: list[AllocationFacts], rng: random.Random
) -> None:
    state = build(persons, allocs)
    shuffled = [*persons], [*allocs], [*PROJECTS], [*TRACKS]
    for items in shuffled:
        rng.shuffle(items)  # type: ignore[arg-type]
    again = desired_state(SITE, shuffled[0], shuffled[2], shuffled[1], shuffled[3], NOW,
                          "ssh-ed25519 AAAA ca")  # fmt: skip
    assert again.generation == state.generation
    assert DesiredState.from_json(state.to_json()) == state


@given(people, allocations)
def test_accounts_hold_what_active_allocations_usable_here_have_left(
    persons: list[PersonFacts], allocs: list[AllocationFacts]
) -> None:
    state = build(persons, allocs)
    for account in state.accounts:
        project = next(p for p in PROJECTS if p.group == account.name)
        usable = [
            a for a in allocs if a.project_id == project.project_id and a.usable_at("groningen")
        ]
        active = [a for a in usable if a.starts_at <= NOW < a.ends_at]
        left = sum(max(0.0, a.gpu_hours - a.charged_gpu_hours) for a in active)
        assert account.gpu_minutes == raw_gpu_minutes(left, SITE.gpu_factor)
        assert account.gpu_minutes >= 0
        assert set(account.qos) <= {"playground", "fast-lane"}
        if not any(a.gpu_hours > a.charged_gpu_hours for a in active):
            assert account.gpu_minutes == 0  # spent, expired or not begun: Slurm stops jobs
    # A project with nothing usable here is no account here.
    here = {a.project_id for a in allocs if a.usable_at("groningen") and a.project_id <= 5}
    assert {a.name for a in state.accounts} == {f"p{i}" for i in here}


@given(people, allocations)
def test_only_members_of_a_project_are_associated_with_it(
    persons: list[PersonFacts], allocs: list[AllocationFacts]
) -> None:
    state = build(persons, allocs)
    accounts = {a.name for a in state.accounts}
    expected = {
        SlurmAssociation(p.username, f"p{i}")
        for p in persons
        for i in p.project_ids
        if f"p{i}" in accounts
    }
    assert set(state.associations) == expected
    for user in state.users:
        person = next(p for p in persons if p.username == user.username)
        # Locked unless a member of a project the site knows (and none is suspended here).
        known = {p.project_id for p in PROJECTS}
        assert user.locked == (not person.project_ids & known)
        assert user.gid == user.uid


def test_a_member_removed_from_a_project_loses_its_association_and_is_locked_when_in_none() -> None:
    alloc = AllocationFacts(1, "fast-lane", 100.0, 30.0, frozenset(), NOW - timedelta(days=1),
                            NOW + timedelta(days=1))  # fmt: skip
    maria = PersonFacts("maria", 1001, frozenset({1, 2}))
    before = build([maria], [alloc])
    assert SlurmAssociation("maria", "p1") in before.associations
    # 70 normalised GPU-hours left on GPUs of factor 1.4: 50 raw GPU-hours, 3000 minutes.
    assert before.accounts[0].gpu_minutes == 3000
    after = build([PersonFacts("maria", 1001, frozenset({2}))], [alloc])
    assert after.associations == ()
    assert after.generation != before.generation
    gone = build([PersonFacts("maria", 1001, frozenset())], [alloc])
    assert gone.users[0].locked and gone.users[0].groups == ()
    spent = AllocationFacts(1, "fast-lane", 100.0, 130.0, frozenset(), NOW - timedelta(days=1),
                            NOW + timedelta(days=1))  # fmt: skip
    assert build([maria], [spent]).accounts[0].gpu_minutes == 0


@given(allocations, st.integers(0, 10**7))
def test_an_accounts_limit_basis_is_what_fabriek_charged_there_and_suspension_leaves_nothing(
    allocs: list[AllocationFacts], counted: int
) -> None:
    projects = [ProjectFacts(1, "p1", 2_000_000_001, counted_gpu_minutes=counted), *PROJECTS[1:]]
    state = desired_state(SITE, [], projects, allocs, TRACKS, NOW)
    for account in state.accounts:
        assert account.counted_gpu_minutes == (counted if account.name == "p1" else 0)
    suspended = [ProjectFacts(p.project_id, p.group, p.gid, suspended=True) for p in PROJECTS]
    assert all(
        a.gpu_minutes == 0 for a in desired_state(SITE, [], suspended, allocs, TRACKS, NOW).accounts
    )
    stopped = [AllocationFacts(**{**a.__dict__, "suspended": True}) for a in allocs]
    assert all(
        a.gpu_minutes == 0 for a in desired_state(SITE, [], PROJECTS, stopped, TRACKS, NOW).accounts
    )


def test_a_suspended_person_is_locked_and_so_is_one_whose_projects_are_all_suspended() -> None:
    people = [
        PersonFacts("ann", 1001, frozenset({1})),
        PersonFacts("bob", 1002, frozenset({1}), suspended=True),
        PersonFacts("cas", 1003, frozenset({2})),
    ]
    projects = [PROJECTS[0], ProjectFacts(2, "p2", 2_000_000_002, suspended=True)]
    users = {u.username: u for u in desired_state(SITE, people, projects, [], TRACKS, NOW).users}
    assert (users["ann"].locked, users["bob"].locked, users["cas"].locked) == (False, True, True)
