"""The pure rules of European identities: a sign-in's assurance (REFEDS RAF, REFEDS MFA)
against the operator's minimum per role, and project memberships from entitlements
(AARC-G002)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fabriek.domain.identity.assurance import (
    REFEDS_MFA,
    Assurance,
    AssuranceRules,
    Level,
    Minimum,
    assurance_from_claims,
    parse_rules,
    shortfalls,
)
from fabriek.domain.identity.entitlements import (
    EntitlementScheme,
    membership_changes,
    parse_entitlement,
    wanted_memberships,
)
from fabriek.domain.roles import Role

IAP = "https://refeds.org/assurance/IAP/"
levels = st.sampled_from(list(Level))
assurances = st.builds(Assurance, levels, st.booleans())
minimums = st.builds(Minimum, levels, st.booleans())
projects = st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True)
roles = st.sampled_from([Role.MEMBER, Role.PRINCIPAL_INVESTIGATOR])


# -- assurance ------------------------------------------------------------------------------


@given(assurances)
def test_an_assurance_code_reads_back_as_itself(got: Assurance) -> None:
    assert Assurance.from_code(got.code) == got


@given(minimums, assurances)
def test_a_sign_in_meets_a_minimum_exactly_when_nothing_is_missing(
    needed: Minimum, got: Assurance
) -> None:
    meets = got.level >= needed.level and (got.mfa or not needed.mfa)
    assert (needed.missing(got) == ()) == meets
    # What is missing names the REFEDS value that would provide it.
    for lack in needed.missing(got):
        assert IAP in lack or REFEDS_MFA in lack


@given(minimums, minimums, assurances)
def test_two_minimums_at_once_are_met_only_when_both_are(
    a: Minimum, b: Minimum, got: Assurance
) -> None:
    assert ((a | b).missing(got) == ()) == (a.missing(got) == () and b.missing(got) == ())


@given(st.lists(st.sampled_from(["low", "medium", "high", "local-enterprise", "bogus"])),
       st.booleans(), st.booleans())  # fmt: skip
def test_claims_give_the_highest_level_named_and_mfa_only_from_the_refeds_profile(
    named: list[str], mfa_in_acr: bool, as_list: bool
) -> None:
    claims: dict[str, object] = {"eduperson_assurance": [IAP + n for n in named]}
    if mfa_in_acr:
        claims["acr"] = REFEDS_MFA
    got = assurance_from_claims(claims)
    order = {"low": Level.LOW, "medium": Level.MEDIUM, "high": Level.HIGH}
    assert got.level == max((order[n] for n in named if n in order), default=Level.NONE)
    assert got.mfa is mfa_in_acr


def test_claims_that_proxies_send_in_other_shapes() -> None:
    assert assurance_from_claims({"acr": "https://refeds.org/profile/sfa"}) == Assurance()
    assert assurance_from_claims({"eduperson_assurance": f"{IAP}medium {REFEDS_MFA}"}) == (
        Assurance(Level.MEDIUM, True)
    )
    assert assurance_from_claims({"eduperson_assurance": 3, "acr": ["x"]}) == Assurance()


def test_rules_are_read_from_the_setting() -> None:
    rules = parse_rules("admin=medium+mfa, site-operator=mfa track:large-scale=MFA")
    assert rules.for_role("admin") == Minimum(Level.MEDIUM, True)
    assert rules.for_role("member") == Minimum()
    assert rules.tracks == {"large-scale"}
    assert rules.for_project("member", ["large-scale"]) == Minimum(Level.NONE, True)
    assert not parse_rules("") and not parse_rules("  ")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("admin", "KEY=REQUIREMENT"),
        ("Admin Role=mfa", "KEY=REQUIREMENT"),
        ("admin=strong", "low, medium, high and/or mfa"),
        ("admin=low+high", "low, medium, high and/or mfa"),
        ("admin=", "low, medium, high and/or mfa"),
        ("admin=mfa,admin=low", "given twice"),
    ],
)
def test_a_wrong_rule_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_rules(text)


@given(minimums, assurances, st.sets(st.sampled_from(["admin", "reviewer", "hub-staff"])))
def test_only_roles_held_with_a_minimum_not_met_fall_short(
    needed: Minimum, got: Assurance, held: set[str]
) -> None:
    rules = AssuranceRules({"admin": needed})
    short = shortfalls(rules, got, held, {})
    assert [s.role for s in short] == (["admin"] if "admin" in held and needed.missing(got) else [])
    # A token the operator made on the store (no sign-in behind it) is not held to minimums.
    assert shortfalls(rules, None, held, {}) == []


@given(st.dictionaries(st.sampled_from(["admin", "member", "track:large-scale"]), minimums),
       assurances, st.sets(st.sampled_from(["admin", "reviewer"])), roles)  # fmt: skip
def test_a_sign_in_that_meets_the_strictest_minimum_meets_every_role(
    table: dict[str, Minimum], got: Assurance, held: set[str], role: Role
) -> None:
    rules = AssuranceRules(table)
    found = shortfalls(rules, got, held, {"p": (role.value, frozenset({"large-scale"}))})
    if not rules.strictest.missing(got):
        assert found == []


@given(assurances, roles, st.sets(st.sampled_from(["large-scale", "fast-lane"])))
def test_a_project_on_a_track_with_a_minimum_needs_it_of_its_members(
    got: Assurance, role: Role, tracks: set[str]
) -> None:
    rules = parse_rules("track:large-scale=mfa")
    short = shortfalls(rules, got, [], {"p": (role.value, frozenset(tracks))})
    assert bool(short) == ("large-scale" in tracks and not got.mfa)
    if short:
        assert short[0].project == "p" and "multi-factor" in str(short[0])


# -- entitlements ---------------------------------------------------------------------------

SCHEME = EntitlementScheme("urn:geant:myaccessid.org:group:fabriek", "myaccessid.org")


@given(projects, st.sampled_from(["", ":role=member", ":role=pi", ":role=principal-investigator"]))
def test_an_entitlement_under_the_prefix_names_a_project_and_role(project: str, role: str) -> None:
    found = parse_entitlement(SCHEME, f"{SCHEME.prefix}:{project}{role}#myaccessid.org")
    assert found is not None and found.project == project
    assert found.role == (Role.MEMBER if role in ("", ":role=member") else
                          Role.PRINCIPAL_INVESTIGATOR)  # fmt: skip


@pytest.mark.parametrize(
    "value",
    [
        "urn:geant:myaccessid.org:group:fabriek:proj#elsewhere.org",  # another authority
        "urn:geant:myaccessid.org:group:fabriek:proj",  # no authority at all
        "urn:geant:myaccessid.org:group:other:proj#myaccessid.org",  # another prefix
        "urn:geant:myaccessid.org:group:fabriekx:proj#myaccessid.org",  # not at a colon
        "urn:geant:myaccessid.org:group:fabriek:proj:sub#myaccessid.org",  # a subgroup
        "urn:geant:myaccessid.org:group:fabriek:proj:role=owner#myaccessid.org",  # unknown role
        "urn:geant:myaccessid.org:group:fabriek:Proj#myaccessid.org",  # not a project name
        "urn:geant:myaccessid.org:group:fabriek#myaccessid.org",  # the prefix itself
    ],
)
def test_other_entitlements_make_no_membership(value: str) -> None:
    assert parse_entitlement(SCHEME, value) is None


def test_the_urn_namespace_is_compared_without_case_and_the_rest_with() -> None:
    upper = "URN:GEANT:myaccessid.org:group:fabriek:proj#myaccessid.org"
    assert parse_entitlement(SCHEME, upper) is not None
    assert parse_entitlement(SCHEME, upper.replace("fabriek", "Fabriek")) is None
    assert parse_entitlement(EntitlementScheme(SCHEME.prefix), upper.split("#")[0]) is not None


@given(st.lists(st.tuples(projects, roles)))
def test_the_lead_role_wins_when_a_project_is_named_twice(named: list[tuple[str, Role]]) -> None:
    values = [f"{SCHEME.prefix}:{p}:role={'pi' if r == Role.PRINCIPAL_INVESTIGATOR else 'member'}"
              f"#myaccessid.org" for p, r in named]  # fmt: skip
    wanted = wanted_memberships(SCHEME, values)
    for project in {p for p, _r in named}:
        lead = any(r == Role.PRINCIPAL_INVESTIGATOR for p, r in named if p == project)
        assert wanted[project] == (Role.PRINCIPAL_INVESTIGATOR if lead else Role.MEMBER)
    assert set(wanted) == {p for p, _r in named}


memberships = st.dictionaries(projects, roles, max_size=6)


@given(memberships, memberships, st.sets(projects, max_size=4), st.sets(projects, max_size=8))
def test_after_the_changes_the_managed_memberships_are_the_wanted_ones_and_by_hand_untouched(
    wanted: dict[str, Role], managed: dict[str, Role], by_hand: set[str], extra: set[str]
) -> None:
    managed = {p: r for p, r in managed.items() if p not in by_hand}
    existing = set(wanted) - extra | set(managed) | by_hand
    changes = membership_changes(wanted, managed, by_hand, existing)
    after = {p: r for p, r in managed.items() if p not in changes.remove}
    after.update(changes.change)
    after.update(changes.add)
    assert after == {p: r for p, r in wanted.items() if p in existing and p not in by_hand}
    touched = set(changes.add) | set(changes.change) | changes.remove
    assert not touched & by_hand
    assert changes.unknown == {p for p in wanted if p not in existing}
