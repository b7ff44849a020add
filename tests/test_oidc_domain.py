"""What Fabriek makes of a provider's claims: usernames, organisation domains, identities."""

from __future__ import annotations

from itertools import islice

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fabriek.domain.identity.oidc import (
    USERNAME,
    ClaimsProblem,
    FederatedIdentity,
    identity_from_claims,
    new_login_secrets,
    organisation_domain,
    username_candidates,
)

ISSUER = "https://connect.example.org"


def _identity(hint: str | None, email: str) -> FederatedIdentity:
    return FederatedIdentity(ISSUER, "sub-1", email, "A Person", hint, None)


@given(
    hint=st.one_of(st.none(), st.text(max_size=120)),
    local=st.text(min_size=1, max_size=80).filter(lambda t: "@" not in t and t.strip()),
)
def test_every_username_candidate_is_valid_and_none_repeats(hint: str | None, local: str) -> None:
    found = list(islice(username_candidates(_identity(hint, f"{local}@example.org")), 30))
    assert all(USERNAME.fullmatch(name) for name in found), found
    assert len(set(found)) == len(found)


def test_usernames_come_from_the_preferred_username_then_the_email() -> None:
    first = list(islice(username_candidates(_identity("J.Jansen@tudelft.nl", "x@y.nl")), 3))
    assert first == ["j.jansen", "j.jansen-2", "j.jansen-3"]
    assert next(username_candidates(_identity(None, "Élise.Dupont@uu.nl"))) == "elise.dupont"
    assert next(username_candidates(_identity("42", "7@uu.nl"))) == "user"
    long = next(username_candidates(_identity("a" * 100, "x@y.nl")))
    assert long == "a" * 63
    assert (
        list(islice(username_candidates(_identity("a" * 100, "x@y.nl")), 2))[1] == "a" * 61 + "-2"
    )


@given(
    st.from_regex(r"[A-Za-z0-9]{1,20}(\.[A-Za-z0-9]{1,20}){0,3}\.[A-Za-z]{2,6}\.?", fullmatch=True)
)
def test_a_domain_is_read_in_one_form_whatever_its_case(text: str) -> None:
    domain = organisation_domain(text)
    assert domain is not None and domain == domain.lower() and not domain.endswith(".")
    assert organisation_domain(text.upper()) == domain
    assert organisation_domain(domain) == domain


@given(st.text(max_size=60))
def test_anything_read_as_a_domain_is_one(text: str) -> None:
    domain = organisation_domain(text)
    assert domain is None or organisation_domain(domain) == domain


def test_organisation_claims_in_the_forms_providers_send() -> None:
    assert organisation_domain(" TUDelft.nl ") == "tudelft.nl"
    assert organisation_domain(["not a domain", "uu.nl"]) == "uu.nl"
    assert organisation_domain(None) is None and organisation_domain(42) is None
    assert organisation_domain("javascript:alert(1)") is None


def test_an_identity_needs_a_subject_and_an_email() -> None:
    claims = {"sub": "abc", "email": "A.Person@Uni.NL", "given_name": "A", "family_name": "Person",
              "schac_home_organization": "uni.nl"}  # fmt: skip
    who = identity_from_claims(claims, ISSUER, "schac_home_organization")
    assert (who.subject, who.email, who.full_name, who.organisation_domain) == (
        "abc", "a.person@uni.nl", "A Person", "uni.nl")  # fmt: skip
    assert identity_from_claims(claims, ISSUER, "org").organisation_domain is None
    with pytest.raises(ClaimsProblem, match="subject"):
        identity_from_claims({**claims, "sub": " "}, ISSUER, "org")
    with pytest.raises(ClaimsProblem, match="e-mail"):
        identity_from_claims({"sub": "abc"}, ISSUER, "org")


def test_login_secrets_are_fresh_and_fit_pkce() -> None:
    one, two = new_login_secrets(), new_login_secrets()
    assert len({one.state, two.state, one.nonce, two.nonce}) == 4
    assert 43 <= len(one.code_verifier) <= 128
