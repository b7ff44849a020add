"""The pure rules of partner factories: who may cross, the partner's country under the
residency rule, the signed assertion, and the usage a partner reports."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.jwk import OKPKey
from pydantic import ValidationError

from fabriek.domain.datasets import Residency
from fabriek.domain.job_states import JobState
from fabriek.domain.partners import (
    ASSERTION_ALG,
    ASSERTION_LIFETIME_S,
    CLOCK_SKEW_S,
    EU_EEA_COUNTRIES,
    Assertion,
    EnergyHourFigures,
    PartnerTerms,
    abroad_terms,
    assertion_for,
    assertion_refusal,
    country_jurisdiction,
    kept_home,
    observed_state,
    partner_usage,
    without_partners,
)
from fabriek.domain.residency import JobDataset, SiteTerms, job_sites
from fabriek.services.jobs.engine_registry import EngineConfig

KEY = OKPKey.generate_key("Ed25519")
countries = st.text(string.ascii_lowercase, min_size=2, max_size=2)
names = st.text(string.ascii_lowercase + "-", min_size=2, max_size=12)


@given(countries)
def test_a_partner_country_is_nl_eu_or_outside(country: str) -> None:
    where = country_jurisdiction(country)
    if country == "nl":
        assert where == "nl"
    elif country in EU_EEA_COUNTRIES:
        assert where == "eu"
    elif country == "eu":  # reserved, not a country: never read as inside the EU
        assert where not in ("nl", "eu")
    else:
        assert where == country


def dataset(residency: Residency) -> JobDataset:
    return JobDataset(1, "dutch-llm", "corpus", 1, 1, residency, personal=False)


@given(countries, st.sampled_from(list(Residency)))
def test_residency_reads_the_partner_country_not_the_site_row(
    country: str, residency: Residency
) -> None:
    """A partner site declared "nl" in its row is still abroad: its country decides."""
    rows = [SiteTerms("amsterdam", "nl", True), SiteTerms("partner", "nl", True)]
    terms = abroad_terms(rows, [PartnerTerms("partner", country, frozenset())])
    verdict = job_sites([dataset(residency)], terms)
    allowed_there = (
        residency is Residency.ANYWHERE
        or (residency is Residency.EU and (country == "nl" or country in EU_EEA_COUNTRIES))
        or (residency is Residency.NL and country == "nl")
    )
    assert ("partner" in verdict.allowed) == allowed_there
    assert "amsterdam" in verdict.allowed


@given(names, st.lists(st.tuples(names, st.sets(names, max_size=3)), max_size=4))
def test_a_project_crosses_only_where_listed(
    project: str, partners: list[tuple[str, set[str]]]
) -> None:
    terms = [PartnerTerms(site, "de", frozenset(projects)) for site, projects in partners]
    home = kept_home(project, terms)
    for t in terms:
        assert (t.site in home) == (project not in t.projects)
    for reason in home.values():
        assert project in reason
    verdict = job_sites([], [SiteTerms(t.site, "eu", True) for t in terms])
    narrowed = without_partners(verdict, home)
    assert not narrowed.allowed & frozenset(home)
    assert set(home) & verdict.allowed <= set(narrowed.excluded)


@given(names, st.integers(0, 2**31), st.binary(max_size=200), st.integers(0, 2**33))
def test_a_signed_assertion_verifies_for_its_body_only(
    person: str, job_id: int, body: bytes, now: int
) -> None:
    made = assertion_for("factory-a", "factory-b", person, job_id, body, now)
    token = jwt.encode({"alg": ASSERTION_ALG}, made.claims(), KEY, algorithms=[ASSERTION_ALG])
    back = Assertion.from_claims(jwt.decode(token, KEY, algorithms=[ASSERTION_ALG]).claims)
    assert back == made
    assert assertion_refusal(
        back, issuer="factory-a", audience="factory-b", body=body, now_s=now
    ) is None  # fmt: skip
    assert assertion_refusal(
        back, issuer="factory-a", audience="factory-b", body=body + b"x", now_s=now
    ) is not None  # fmt: skip
    assert assertion_refusal(
        back, issuer="factory-c", audience="factory-b", body=body, now_s=now
    ) is not None  # fmt: skip
    assert assertion_refusal(
        back, issuer="factory-a", audience="factory-c", body=body, now_s=now
    ) is not None  # fmt: skip
    late = now + ASSERTION_LIFETIME_S + CLOCK_SKEW_S + 1
    assert assertion_refusal(back, issuer="factory-a", audience="factory-b", body=body,
                             now_s=late) == "the assertion has expired"  # fmt: skip


@given(st.lists(st.tuples(st.floats(0, 100), st.floats(1, 2), st.none() | st.floats(0, 900))))
def test_partner_usage_adds_up(hours: list[tuple[float, float, float | None]]) -> None:
    figures = [EnergyHourFigures(kwh, pue, "NL", g) for kwh, pue, g in hours]
    usage = partner_usage(7200.0, figures)
    assert usage["gpu_hours"] == 2.0
    assert usage["facility_kwh"] >= usage["it_kwh"] - 1e-9
    assert usage["carbon_complete"] == all(g is not None for *_, g in hours)
    expected = sum(kwh * pue * g for kwh, pue, g in hours if g is not None)
    assert abs(usage["carbon_g"] - expected) <= 1e-6 * max(1.0, expected)


def test_the_partner_states_as_this_factory_reads_them() -> None:
    assert observed_state(JobState.STARTING) is JobState.PENDING
    assert observed_state(JobState.PREEMPTED) is JobState.PENDING
    for state in (JobState.RUNNING, JobState.COMPLETED, JobState.FAILED, JobState.LOST):
        assert observed_state(state) is state


def test_a_partner_named_in_country_eu_is_refused_by_the_sites_file() -> None:
    """ "eu" is no country: a sites file that gives it as a partner's country is an error,
    so a partner cannot pass for an EU one without naming its state."""
    keys = {"url": "https://partner.example", "token_file": "/t", "partner_project": "p",
            "factory": "nl", "partner": "de", "signing_key_file": "/k"}  # fmt: skip
    assert EngineConfig(engine="partner", country="de", **keys).partner_terms("x")
    with pytest.raises(ValidationError, match="country eu is no country"):
        EngineConfig(engine="partner", country="eu", **keys)
