"""Fabriek as an OpenID Connect relying party: discovery, the authorization request with
PKCE, state and nonce, the code exchange, and checking the ID token against the provider's
published keys.

Authlib's OAuth 2 client pieces build the authorization request (RFC 6749 4.1.1 with the
PKCE challenge of RFC 7636), the token request and its client authentication; httpx carries
them (Authlib's own httpx client now wants a fork of httpx, so it is not used). joserfc,
the JOSE library Authlib itself builds on (its `authlib.jose` is deprecated in its
favour), checks the ID token's signature and claims.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from fabriek.domain.identity.oidc import LoginSecrets

# Signature algorithms an ID token may use: asymmetric only, so a leaked client secret
# cannot mint tokens, and never 'none'.
ID_TOKEN_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")
# Clocks of provider and factory may differ a little.
CLOCK_SKEW_S = 60
# How long the provider's discovery document and keys are trusted before they are read
# again; a token signed with a key not yet seen makes the keys be read at once.
METADATA_TTL_S = 3600.0
# Seconds to wait for the provider on each call: a sign-in must not hang on a slow one.
PROVIDER_TIMEOUT_S = 10.0


@dataclass
class SignInRefused(Exception):
    """A sign-in that cannot go on, with the HTTP status and a message for the person."""

    status: int
    detail: str

    def __str__(self) -> str:
        return self.detail


@dataclass(frozen=True)
class ProviderMetadata:
    """What Fabriek needs of the provider's `/.well-known/openid-configuration`."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None


@dataclass(frozen=True)
class RelyingPartyConfig:
    """Fabriek's registration with one provider."""

    issuer: str
    client_id: str
    client_secret: str | None
    scopes: str
    redirect_uri: str


@dataclass
class _Cache:
    metadata: ProviderMetadata | None = None
    keys: KeySet | None = None
    read_at: float = 0.0  # time.monotonic()
    lock: threading.Lock = field(default_factory=threading.Lock)


def _unreachable(what: str, exc: Exception) -> SignInRefused:
    return SignInRefused(
        502,
        f"the sign-in provider could not be reached ({what}: {type(exc).__name__}); "
        "try again in a minute, or sign in with an API token",
    )


class RelyingParty:
    """Sign-in through one OpenID Connect provider. Safe to share between threads."""

    def __init__(self, config: RelyingPartyConfig) -> None:
        self.config = config
        self._cache = _Cache()

    def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            answer = httpx.get(url, timeout=PROVIDER_TIMEOUT_S, follow_redirects=False)
            answer.raise_for_status()
            body = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise _unreachable(what, exc) from None
        if not isinstance(body, dict):
            raise SignInRefused(502, f"the sign-in provider's {what} is not a JSON object")
        return body

    def _read_metadata(self) -> ProviderMetadata:
        issuer = self.config.issuer.rstrip("/")
        doc = self._get_json(f"{issuer}/.well-known/openid-configuration", "discovery document")
        # OpenID Connect Discovery 1.0, 4.3: the document must name exactly this issuer, or
        # a look-alike could hand out keys for tokens Fabriek would then believe.
        if doc.get("issuer") != self.config.issuer:
            raise SignInRefused(
                502,
                f"the sign-in provider calls itself {doc.get('issuer')!r}, not the configured "
                f"{self.config.issuer!r}: check FABRIEK_OIDC_ISSUER",
            )
        needed = ("authorization_endpoint", "token_endpoint", "jwks_uri")
        missing = [k for k in needed if not isinstance(doc.get(k), str)]
        if missing:
            raise SignInRefused(
                502, f"the sign-in provider's discovery document lacks {', '.join(missing)}"
            )
        userinfo = doc.get("userinfo_endpoint")
        return ProviderMetadata(
            issuer=doc["issuer"],
            authorization_endpoint=doc["authorization_endpoint"],
            token_endpoint=doc["token_endpoint"],
            jwks_uri=doc["jwks_uri"],
            userinfo_endpoint=userinfo if isinstance(userinfo, str) else None,
        )

    def _read_keys(self, metadata: ProviderMetadata) -> KeySet:
        try:
            return KeySet.import_key_set(self._get_json(metadata.jwks_uri, "keys (JWKS)"))  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError):
            raise SignInRefused(502, "the sign-in provider's keys (JWKS) cannot be read") from None

    def _current(self, refresh: bool = False) -> tuple[ProviderMetadata, KeySet]:
        cache = self._cache
        with cache.lock:
            stale = time.monotonic() - cache.read_at > METADATA_TTL_S
            if refresh or stale or cache.metadata is None or cache.keys is None:
                metadata = self._read_metadata()
                keys = self._read_keys(metadata)
                cache.metadata, cache.keys, cache.read_at = metadata, keys, time.monotonic()
            assert cache.metadata is not None and cache.keys is not None
            return cache.metadata, cache.keys

    def metadata(self) -> ProviderMetadata:
        """The provider's endpoints, from its discovery document (cached)."""
        return self._current()[0]

    def authorization_url(self, secrets: LoginSecrets, prompt: str | None = None) -> str:
        """Where to send the browser: the provider's authorization endpoint with this
        sign-in's state, nonce and PKCE challenge (S256); `prompt` ('login': ask for the
        credentials again, not the session the provider may still hold) when given."""
        extra = {"prompt": prompt} if prompt else {}
        return str(
            prepare_grant_uri(
                self.metadata().authorization_endpoint,
                client_id=self.config.client_id,
                response_type="code",
                redirect_uri=self.config.redirect_uri,
                scope=self.config.scopes,
                state=secrets.state,
                nonce=secrets.nonce,
                code_challenge=create_s256_code_challenge(secrets.code_verifier),
                code_challenge_method="S256",
                **extra,
            )
        )

    def redeem(self, code: str, secrets: LoginSecrets, now: datetime) -> dict[str, Any]:
        """The signed-in person's claims: redeem the code (with the PKCE verifier), check the
        ID token, and add what the userinfo endpoint says about the same subject."""
        metadata = self.metadata()
        token = self._token(metadata.token_endpoint, code, secrets.code_verifier)
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise SignInRefused(401, "the sign-in provider sent no ID token; start again")
        claims = self.check_id_token(id_token, secrets.nonce, now)
        access_token = token.get("access_token")
        if metadata.userinfo_endpoint and isinstance(access_token, str):
            userinfo = self._userinfo(metadata.userinfo_endpoint, access_token, claims)
            # What the ID token says is signed; userinfo only adds what it leaves out.
            claims = {**userinfo, **claims}
        return claims

    def _token(self, endpoint: str, code: str, code_verifier: str) -> dict[str, Any]:
        """The token endpoint's answer to the code (RFC 6749 4.1.3, RFC 7636 4.5)."""
        body = prepare_token_request(
            "authorization_code",
            redirect_uri=self.config.redirect_uri,
            code=code,
            code_verifier=code_verifier,
        )
        secret = self.config.client_secret
        auth = ClientAuth(
            self.config.client_id, secret, "client_secret_basic" if secret else "none"
        )
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        uri, headers, body = auth.prepare("POST", endpoint, headers, body)
        try:
            answer = httpx.post(uri, content=body, headers=headers, timeout=PROVIDER_TIMEOUT_S)
            token = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise _unreachable("token endpoint", exc) from None
        if not isinstance(token, dict):
            raise SignInRefused(502, "the sign-in provider's token answer is not a JSON object")
        if "error" in token or answer.status_code != 200:
            raise SignInRefused(
                400,
                f"the sign-in provider refused to complete the sign-in "
                f"({token.get('error', answer.status_code)}: "
                f"{token.get('error_description') or 'no reason given'}); start again",
            )
        return token

    def _userinfo(
        self, endpoint: str, access_token: str, id_claims: Mapping[str, Any]
    ) -> dict[str, Any]:
        try:
            answer = httpx.get(
                endpoint,
                headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
                timeout=PROVIDER_TIMEOUT_S,
            )
            answer.raise_for_status()
            info = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise _unreachable("userinfo endpoint", exc) from None
        # OpenID Connect Core 1.0, 5.3.2: userinfo about anyone else must not be used.
        if not isinstance(info, dict) or info.get("sub") != id_claims["sub"]:
            raise SignInRefused(401, "the sign-in provider's userinfo is about someone else")
        return info

    def check_id_token(self, id_token: str, nonce: str, now: datetime) -> dict[str, Any]:
        """The ID token's claims, once its signature (by a key the provider publishes),
        issuer, audience, expiry and nonce are right; SignInRefused (401) otherwise."""
        metadata, keys = self._current()
        try:
            try:
                decoded = jwt.decode(id_token, keys, algorithms=ID_TOKEN_ALGORITHMS)
            except InvalidKeyIdError:
                # The provider may have rotated its keys since they were read.
                metadata, keys = self._current(refresh=True)
                decoded = jwt.decode(id_token, keys, algorithms=ID_TOKEN_ALGORITHMS)
            claims: dict[str, Any] = dict(decoded.claims)
            jwt.JWTClaimsRegistry(
                now=int(now.timestamp()),
                leeway=CLOCK_SKEW_S,
                iss={"essential": True, "value": metadata.issuer},
                aud={"essential": True, "value": self.config.client_id},
                sub={"essential": True},
                exp={"essential": True},
                iat={"essential": True},
                nonce={"essential": True, "value": nonce},
            ).validate(claims)
        except ExpiredTokenError:
            raise SignInRefused(
                401, "the sign-in provider's ID token has expired; start again"
            ) from None
        except JoseError as exc:
            raise SignInRefused(
                401,
                f"the sign-in provider's ID token is not valid ({exc.error}"
                f"{': ' + exc.description if exc.description else ''}); start again",
            ) from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        # Core 1.0, 3.1.3.7: a token for several audiences must name Fabriek as its party.
        if len(audiences) > 1 and claims.get("azp") != self.config.client_id:
            raise SignInRefused(401, "the sign-in provider's ID token was issued to another party")
        return claims
