"""Terms of use as pure rules: what a person must still accept (hypothesis properties and
the cases people ask about), and the scheduler keeping jobs off the sites whose terms their
user has not accepted."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from fabriek.domain.terms import (
    FACTORY,
    PendingTerms,
    TermsNotAccepted,
    TermsVersion,
    may_accept,
    pending_version,
    scopes_for,
)
from fabriek.scheduler import WaitReason
from fabriek.scheduler import schedule as run_cycle
from tests.scheduler.factories import pending, site, snapshot

# A scope's versions 1..n, each requiring acceptance or editorial.
versions_st = st.lists(st.booleans(), min_size=1, max_size=12).map(
    lambda flags: [TermsVersion("s", i + 1, f) for i, f in enumerate(flags)]
)


def v(*requires: bool) -> list[TermsVersion]:
    return [TermsVersion("s", i + 1, r) for i, r in enumerate(requires)]


def test_the_cases_of_the_issue() -> None:
    assert pending_version([], set()) is None  # nothing published, nothing to accept
    assert pending_version(v(True), set()) == 1
    assert pending_version(v(True), {1}) is None
    assert pending_version(v(True, True, False), {2}) is None  # v3 editorial: v2 still counts
    assert pending_version(v(True, False, True), {2}) == 3  # v3 must be accepted
    assert pending_version(v(True, True, False), {1}) == 3  # asked for the newest text
    assert pending_version(v(False, False), set()) is None  # only editorial versions
    assert may_accept(v(True, False), 1) and may_accept(v(True, False), 2)
    assert not may_accept(v(True, True), 1) and not may_accept(v(True), 5)


@given(versions_st, st.sets(st.integers(1, 12)))
def test_what_is_pending_is_the_newest_version_or_nothing(
    versions: list[TermsVersion], accepted: set[int]
) -> None:
    found = pending_version(versions, accepted)
    assert found in (None, len(versions))


@given(versions_st, st.sets(st.integers(1, 12)))
def test_accepting_what_is_pending_satisfies_the_scope(
    versions: list[TermsVersion], accepted: set[int]
) -> None:
    found = pending_version(versions, accepted)
    if found is not None:
        assert may_accept(versions, found)
        assert pending_version(versions, accepted | {found}) is None


@given(versions_st, st.sets(st.integers(1, 12)), st.booleans())
def test_a_new_version_undoes_acceptance_only_if_it_requires_it(
    versions: list[TermsVersion], accepted: set[int], requires: bool
) -> None:
    accepted = {a for a in accepted if a <= len(versions)}  # only what was published
    before = pending_version(versions, accepted)
    after = pending_version([*versions, TermsVersion("s", len(versions) + 1, requires)], accepted)
    if requires:
        assert after == len(versions) + 1
    else:
        assert (after is None) == (before is None)


@given(versions_st, st.sets(st.integers(1, 12)), st.sets(st.integers(1, 12)))
def test_accepting_more_never_asks_for_more(
    versions: list[TermsVersion], accepted: set[int], more: set[int]
) -> None:
    if pending_version(versions, accepted) is None:
        assert pending_version(versions, accepted | more) is None


@given(versions_st, st.integers(1, 12))
def test_an_accepted_version_that_may_be_accepted_satisfies(
    versions: list[TermsVersion], version: int
) -> None:
    assert may_accept(versions, version) == (
        version <= len(versions) and pending_version(versions, {version}) is None
    )


def test_the_factorys_terms_always_apply_a_sites_when_named() -> None:
    assert scopes_for(None) == (FACTORY,)
    assert scopes_for("amsterdam") == (FACTORY, "amsterdam")


def test_the_refusal_names_each_version_and_links_it() -> None:
    refusal = TermsNotAccepted((PendingTerms(FACTORY, 3, "Use"), PendingTerms("amsterdam", 1)))
    assert "the factory's terms of use version 3" in refusal.detail
    assert "site amsterdam's terms of use version 1" in refusal.detail
    links = refusal.extensions()
    assert links["terms_url"] == "/api/v1/terms/factory/3"
    assert links["accept_url"] == "/api/v1/terms/factory/3/accept"
    assert [t["scope"] for t in links["terms"]] == [FACTORY, "amsterdam"]  # type: ignore[attr-defined]


# -- the scheduler ---------------------------------------------------------------------------------


def test_a_job_starts_only_at_sites_its_user_accepted() -> None:
    # s1 and s2 both free. u1 accepted only s2's terms: the job goes there, never to s1.
    sites = [site("s1"), site("s2", prefix="m")]
    snap = replace(
        snapshot([pending(1, gpus=8)], sites=sites), user_sites={"u1": frozenset({"s2"})}
    )
    assert [s.site for s in run_cycle(snap).starts] == ["s2"]
    # Another user, named nowhere, may use any site.
    other = replace(snap, pending=[pending(2, gpus=8, user="u2")])
    assert [s.site for s in run_cycle(other).starts] == ["s1"]


def test_a_job_waits_for_terms_naming_the_sites() -> None:
    # Only s1 is free, and u1 has not accepted its terms: the job waits and says why.
    sites = [site("s1"), site("s2", free=[0, 0], prefix="m")]
    snap = replace(
        snapshot([pending(1, gpus=8)], sites=sites), user_sites={"u1": frozenset({"s2"})}
    )
    result = run_cycle(snap)
    assert result.starts == []
    [wait] = result.waits
    assert wait.reason is WaitReason.TERMS_NOT_ACCEPTED
    assert wait.detail == "terms of use of site s1 not accepted by u1"
    # Accepted at no site (the factory's terms): it can never start until they are.
    barred = replace(snap, user_sites={"u1": frozenset()})
    [never] = run_cycle(barred).waits
    assert never.reason is WaitReason.TERMS_NOT_ACCEPTED
    assert never.detail == "terms of use of sites s1, s2 not accepted by u1"
