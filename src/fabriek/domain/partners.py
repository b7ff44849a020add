"""Partner factories: another Fabriek installation as a site of this one.

The rules here are pure: which projects' jobs may cross to a partner, what a partner's
country means for the residency rule, what a signed assertion of who submitted must say,
and how a partner's job states read here. The signing, the HTTP calls and the store are
the engine's (`engines.partner`) and the services' (`services.partners`).

An assertion is a JSON Web Token signed with Ed25519 by the submitting factory's key; the
partner trusts that factory's public key from its partners file. Its claims bind it to one
job of one person at one time: `iss` the submitting factory, `aud` the partner, `sub` the
person (their username at the submitting factory), `job` the submitting factory's job id
(the partner's idempotency key), `body` the SHA-256 of the exact request body it travels
with, `iat`/`exp` a few minutes apart.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fabriek.domain.job_states import JobState
from fabriek.domain.residency import ResidencyVerdict, SiteTerms

# The partner API this Fabriek speaks: a partner that offers another is reported by name.
PARTNER_API = "fabriek-partner/1"
# The header an assertion travels in.
ASSERTION_HEADER = "Fabriek-Assertion"
# The signature algorithm (RFC 9864's name for Ed25519 in JOSE).
ASSERTION_ALG = "Ed25519"
# How long an assertion is good for, and how far two factories' clocks may disagree.
ASSERTION_LIFETIME_S = 300
CLOCK_SKEW_S = 60

# The EU and EEA member states (ISO 3166-1 alpha-2; Greece as GR): a partner in one of them
# is under the EU/EEA for the residency rule, the Netherlands under "nl", any other country
# outside both.
EU_EEA_COUNTRIES = frozenset(
    [
        "at",
        "be",
        "bg",
        "hr",
        "cy",
        "cz",
        "dk",
        "ee",
        "fi",
        "fr",
        "de",
        "gr",
        "hu",
        "ie",
        "it",
        "lv",
        "lt",
        "lu",
        "mt",
        "nl",
        "pl",
        "pt",
        "ro",
        "sk",
        "si",
        "es",
        "se",
        "is",
        "li",
        "no",
    ]
)


# The jurisdiction of a partner whose country code is no country: never "nl" nor "eu".
NOT_A_COUNTRY = "not-a-country"


def country_jurisdiction(country: str) -> str:
    """The jurisdiction a partner in `country` is under for the residency rule: "nl", "eu"
    for another EU/EEA state, else the country's own code (outside the EU/EEA)."""
    code = country.strip().lower()
    if code == "nl":
        return "nl"
    if code in EU_EEA_COUNTRIES:
        return "eu"
    # ISO 3166 reserves "eu" without making it a country: a partner that names it is not
    # thereby inside the EU, so it must not read as the "eu" jurisdiction (fail closed).
    return NOT_A_COUNTRY if code == "eu" else code


@dataclass(frozen=True, slots=True)
class PartnerTerms:
    """What the scheduler needs to know of a partner site: its country, and the projects
    whose jobs may cross to it (empty: none)."""

    site: str
    country: str
    projects: frozenset[str]


# Why a job that serves a web app (a notebook, a model endpoint's replica) stays home.
WEB_APP_HOME = "its web app is reached through this factory's proxy, not at a partner factory"


def kept_home(project: str, partners: Iterable[PartnerTerms]) -> dict[str, str]:
    """The partner sites a project's jobs may not use, each with the reason: a project
    crosses to a partner only where the operator listed it (`projects` in the sites file)."""
    return {
        p.site: f"project {project} may not run at partner factory {p.site} "
        "(not in its projects in the sites file)"
        for p in partners
        if project not in p.projects
    }


def abroad_terms(terms: Iterable[SiteTerms], partners: Iterable[PartnerTerms]) -> list[SiteTerms]:
    """The sites' residency terms with each partner site under its country's jurisdiction
    (the sites file's `country`), whatever its site row declares."""
    country = {p.site: country_jurisdiction(p.country) for p in partners}
    return [
        SiteTerms(t.name, country[t.name], t.gdpr_ready) if t.name in country else t for t in terms
    ]


def without_partners(verdict: ResidencyVerdict, home: Mapping[str, str]) -> ResidencyVerdict:
    """A job's residency verdict with the partner sites its project may not use taken out,
    each with the reason (`kept_home`)."""
    dropped = verdict.allowed & frozenset(home)
    if not dropped:
        return verdict
    excluded = {**verdict.excluded, **{s: home[s] for s in dropped}}
    return ResidencyVerdict(verdict.allowed - dropped, excluded)


def body_digest(body: bytes) -> str:
    """The SHA-256 of a request body, as the assertion's `body` claim holds it."""
    return hashlib.sha256(body).hexdigest()


class AssertionRefused(Exception):
    """A submission's assertion is missing, badly signed, or says the wrong thing."""


@dataclass(frozen=True, slots=True)
class Assertion:
    """Who submitted which job, as the submitting factory signs it."""

    issuer: str
    audience: str
    person: str
    job_id: int
    body_sha256: str
    issued_at: int
    expires_at: int
    person_name: str | None = None

    def claims(self) -> dict[str, Any]:
        """As the token's claims."""
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": self.person,
            "job": self.job_id,
            "body": self.body_sha256,
            "iat": self.issued_at,
            "exp": self.expires_at,
        }
        if self.person_name:
            claims["name"] = self.person_name
        return claims

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Assertion:
        """From a verified token's claims; AssertionRefused when one is missing or of the
        wrong kind."""
        try:
            name = claims.get("name")
            return cls(
                issuer=_text(claims["iss"]),
                audience=_text(claims["aud"]),
                person=_text(claims["sub"]),
                job_id=_whole(claims["job"]),
                body_sha256=_text(claims["body"]),
                issued_at=_whole(claims["iat"]),
                expires_at=_whole(claims["exp"]),
                person_name=_text(name) if name is not None else None,
            )
        except KeyError as missing:
            raise AssertionRefused(f"the assertion has no {missing.args[0]!r} claim") from None
        except (TypeError, ValueError) as exc:
            raise AssertionRefused(f"the assertion's claims are malformed: {exc}") from None


def _text(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 200:
        raise ValueError(f"{value!r} is not a name")
    return value


def _whole(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{value!r} is not a whole number")
    return value


def assertion_for(
    issuer: str,
    audience: str,
    person: str,
    job_id: int,
    body: bytes,
    now_s: int,
    person_name: str | None = None,
) -> Assertion:
    """The assertion a factory signs for one submission of `body`."""
    return Assertion(
        issuer, audience, person, job_id, body_digest(body), now_s,
        now_s + ASSERTION_LIFETIME_S, person_name,
    )  # fmt: skip


def assertion_refusal(
    assertion: Assertion, *, issuer: str, audience: str, body: bytes, now_s: int
) -> str | None:
    """Why a partner refuses a (correctly signed) assertion, or None when it holds: it must
    come from the partner whose key verified it, be meant for this factory, travel with the
    body it was made for, and be current."""
    if assertion.issuer != issuer:
        return f"the assertion names {assertion.issuer!r} as its issuer, not {issuer!r}"
    if assertion.audience != audience:
        return f"the assertion is meant for {assertion.audience!r}, not this factory ({audience!r})"
    if assertion.body_sha256 != body_digest(body):
        return "the assertion was made for another request body"
    if assertion.issued_at > now_s + CLOCK_SKEW_S:
        return "the assertion was issued in the future: check the submitting factory's clock"
    if assertion.expires_at + CLOCK_SKEW_S < now_s:
        return "the assertion has expired"
    if assertion.expires_at - assertion.issued_at > 2 * ASSERTION_LIFETIME_S:
        return f"the assertion is valid for longer than {2 * ASSERTION_LIFETIME_S} s"
    return None


@dataclass(frozen=True, slots=True)
class EnergyHourFigures:
    """One hour of a job's energy at the factory that ran it: IT kWh, the site's PUE, its
    grid zone and that zone's intensity for the hour (None where not loaded)."""

    it_kwh: float
    pue: float
    zone: str
    g_per_kwh: float | None


def partner_usage(gpu_seconds: float, hours: Sequence[EnergyHourFigures]) -> dict[str, Any]:
    """What the factory that ran a job reports of it to the factory that sent it: GPU-hours,
    IT and facility energy, and carbon in its own grid's intensity. Carbon counts only the
    hours whose intensity it knows; `carbon_complete` says whether that was all of them."""
    facility = sum(h.it_kwh * h.pue for h in hours)
    known = [h for h in hours if h.g_per_kwh is not None]
    return {
        "gpu_hours": gpu_seconds / 3600,
        "it_kwh": sum(h.it_kwh for h in hours),
        "facility_kwh": facility,
        "carbon_g": sum(h.it_kwh * h.pue * (h.g_per_kwh or 0.0) for h in known),
        "carbon_complete": len(known) == len(hours),
        "grid_zones": sorted({h.zone for h in hours}),
    }


# The partner's job states as this factory's engine reports them: a job waiting or being
# started there is queued on that "cluster"; one preempted there is requeued there.
_SEEN_AS: Mapping[JobState, JobState] = {
    JobState.PENDING: JobState.PENDING,
    JobState.STARTING: JobState.PENDING,
    JobState.PREEMPTED: JobState.PENDING,
}


def observed_state(partner_state: JobState) -> JobState:
    """The state this factory records for a job in `partner_state` at the partner."""
    return _SEEN_AS.get(partner_state, partner_state)
