"""Who a person is at an OpenID Connect provider, read from the claims it signed.

A research and education federation (SURFconext, an eduGAIN proxy) or a company's identity
provider vouches for a person with an ID token. Fabriek knows them by the pair (issuer,
subject): a subject is unique only at its issuer, and usernames and e-mail addresses may
change there while the subject does not.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from fabriek.domain.identity.assurance import Assurance, assurance_from_claims

# Usernames follow `fabriek.domain.identity.people.Username`.
USERNAME = re.compile(r"^[a-z][a-z0-9._-]{1,62}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_USERNAME_LENGTH = 63


class ClaimsProblem(ValueError):
    """The provider's claims cannot make a Fabriek user; the message says what is missing."""


@dataclass(frozen=True)
class FederatedIdentity:
    """A person as their provider describes them."""

    issuer: str
    subject: str
    email: str
    full_name: str
    username_hint: str | None
    organisation_domain: str | None
    # How sure the sign-in is (REFEDS RAF level, REFEDS MFA), and the entitlements
    # (`eduperson_entitlement`) it carries, as released.
    assurance: Assurance = field(default_factory=Assurance)
    entitlements: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoginSecrets:
    """What ties a provider's answer to the sign-in that asked for it: `state` (the browser
    that started it), `nonce` (the ID token minted for it) and the PKCE `code_verifier`
    (only this client can redeem the code)."""

    state: str
    nonce: str
    code_verifier: str


def new_login_secrets() -> LoginSecrets:
    """Fresh random values for one sign-in; the verifier has the 43..128 characters RFC 7636
    asks for."""
    return LoginSecrets(
        state=secrets.token_urlsafe(32),
        nonce=secrets.token_urlsafe(32),
        code_verifier=secrets.token_urlsafe(48),
    )


def organisation_domain(value: object) -> str | None:
    """The organisation's domain from the organisation claim ('TUDelft.nl.' → 'tudelft.nl');
    None when absent or not a domain. A list (some proxies send one) gives its first domain."""
    if isinstance(value, list):
        found = (organisation_domain(v) for v in value)
        return next((d for d in found if d is not None), None)
    if not isinstance(value, str):
        return None
    domain = value.strip().lower().rstrip(".")
    return domain if _DOMAIN.fullmatch(domain) else None


def _strings(value: object) -> tuple[str, ...]:
    """A claim that may be one string or a list of them (proxies differ), as a tuple."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str))
    return ()


def _text(claims: Mapping[str, object], name: str) -> str | None:
    value = claims.get(name)
    return value.strip() if isinstance(value, str) and value.strip() else None


def identity_from_claims(
    claims: Mapping[str, object], issuer: str, organisation_claim: str
) -> FederatedIdentity:
    """The person the (already validated) claims describe, or ClaimsProblem."""
    subject = _text(claims, "sub")
    if subject is None or len(subject) > 255:
        raise ClaimsProblem("the provider sent no usable subject ('sub') for you")
    email = _text(claims, "email")
    if email is None or len(email) > 254 or not _EMAIL.fullmatch(email):
        raise ClaimsProblem(
            "the provider did not release your e-mail address, which Fabriek needs: "
            "ask the factory's operator to have the 'email' claim released"
        )
    given, family = _text(claims, "given_name"), _text(claims, "family_name")
    joined = " ".join(p for p in (given, family) if p) or None
    hint = _text(claims, "preferred_username")
    full_name = _text(claims, "name") or joined or hint or email.split("@")[0]
    return FederatedIdentity(
        issuer=issuer,
        subject=subject,
        email=email.lower(),
        full_name=full_name[:200],
        username_hint=hint,
        organisation_domain=organisation_domain(claims.get(organisation_claim)),
        assurance=assurance_from_claims(claims),
        entitlements=_strings(claims.get("eduperson_entitlement")),
    )


def _username_base(text: str) -> str | None:
    """A username made from free text: ASCII, lowercase, only the allowed characters,
    starting with a letter; None when too little is left."""
    local = text.split("@")[0]
    folded = unicodedata.normalize("NFKD", local).encode("ascii", "ignore").decode().lower()
    cleaned = re.sub(r"[^a-z0-9._-]+", "-", folded)
    cleaned = re.sub(r"([._-])[._-]+", r"\1", cleaned)
    cleaned = re.sub(r"^[^a-z]+", "", cleaned).rstrip("._-")
    return cleaned[:_USERNAME_LENGTH] if len(cleaned) >= 2 else None


def username_candidates(identity: FederatedIdentity) -> Iterator[str]:
    """Usernames to try for a new user, best first: from the provider's preferred username,
    else the e-mail's local part, else 'user'; then the same with -2, -3, ... so that a
    taken one is never reused. Each is a valid username."""
    base = next(
        (b for b in (_username_base(t) for t in (identity.username_hint, identity.email) if t)
         if b is not None),
        "user",
    )  # fmt: skip
    yield base
    n = 2
    while True:
        suffix = f"-{n}"
        yield base[: _USERNAME_LENGTH - len(suffix)].rstrip("._-") + suffix
        n += 1
