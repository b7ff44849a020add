"""POSIX names and numbers for people and projects: no two ever share one, a valid free
name is kept as it is, and the same inputs always give the same choice."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fabriek.domain.accounts import DEFAULT_ID_BASE, IdentityOutOfRange
from fabriek.domain.posix_names import (
    PROJECT_GID_OFFSET,
    RESERVED,
    allocate_names,
    choose_id,
    choose_name,
    is_posix_name,
    name_stem,
    person_uid,
    project_gid,
)

# Fabriek usernames and project names, and worse: any text a person might be called.
fabriek_names = st.from_regex(r"[a-z][a-z0-9._-]{1,62}", fullmatch=True)
any_text = st.text(min_size=0, max_size=80)
names = st.one_of(fabriek_names, any_text, st.sampled_from(sorted(RESERVED)))
taken_names = st.sets(st.one_of(fabriek_names, st.sampled_from(["maria", "maria2", "u3d"])))


@given(names, taken_names)
def test_a_chosen_name_is_valid_free_and_no_system_account(wanted: str, taken: set[str]) -> None:
    chosen = choose_name(wanted, taken, "u")
    assert is_posix_name(chosen)
    assert chosen not in taken
    assert chosen not in RESERVED
    assert choose_name(wanted, set(sorted(taken, reverse=True)), "u") == chosen


@given(fabriek_names, taken_names)
def test_a_valid_free_name_is_kept(wanted: str, taken: set[str]) -> None:
    if is_posix_name(wanted) and wanted not in taken:
        assert choose_name(wanted, taken, "u") == wanted


@given(st.lists(st.tuples(st.integers(1, 10_000), names), unique_by=lambda p: p[0]), taken_names)
def test_no_two_people_get_the_same_name(wanted: list[tuple[int, str]], taken: set[str]) -> None:
    chosen = allocate_names(wanted, taken, "u")
    assert set(chosen) == {n for n, _ in wanted}
    assert len(set(chosen.values())) == len(chosen)
    assert not set(chosen.values()) & taken
    # Deterministic whatever order the people come in.
    assert allocate_names(list(reversed(wanted)), taken, "u") == chosen


@given(st.integers(1, PROJECT_GID_OFFSET - 1), st.sets(st.integers(0, 2**31)))
def test_a_chosen_id_is_free_and_at_least_the_preferred(user_id: int, taken: set[int]) -> None:
    preferred = person_uid(1000, user_id)
    chosen = choose_id(preferred, taken)
    assert chosen not in taken and chosen >= preferred


@given(st.sets(st.integers(1, PROJECT_GID_OFFSET - 1), max_size=50), st.integers(1, 10**6))
def test_no_project_group_shares_a_number_with_anyone(people: set[int], project: int) -> None:
    uids = {person_uid(DEFAULT_ID_BASE, p) for p in people}
    assert len(uids) == len(people)
    # A person's own group has their UID as its GID: no project's GID may be one.
    assert project_gid(DEFAULT_ID_BASE, project) not in uids


def test_names_that_are_not_posix_names_are_made_into_one() -> None:
    assert choose_name("maria.visser", set(), "u") == "maria-visser"
    assert choose_name("maria", {"maria"}, "u") == "maria2"
    assert choose_name("3d-vision", set(), "p") == "p3d-vision"
    assert choose_name("root", set(), "u") == "uroot"
    assert name_stem("Ünïcode Näme!", "u") == "n-code-n-me"
    assert name_stem("...", "u") == "u"
    assert len(choose_name("a" * 63, {"a" * 32}, "u")) == 32


def test_a_person_the_id_range_cannot_hold_is_refused() -> None:
    with pytest.raises(IdentityOutOfRange):
        choose_id(2**31 - 2, {2**31 - 2})
    with pytest.raises(IdentityOutOfRange):
        person_uid(DEFAULT_ID_BASE, 0)
