"""A real OpenID Connect provider on loopback, for the sign-in tests.

It stands in for SURFconext and the eduGAIN proxies (a national identity federation, which
cannot run here), but it is a real OpenID Connect implementation, not a stubbed answer:
Authlib's authorization server (`authlib.oauth2.rfc6749.AuthorizationServer`) with the
authorization-code grant, PKCE (`rfc7636.CodeChallenge`, S256 required) and OpenID Connect
Core's ID token (`authlib.oidc.core.OpenIDCode`, nonce checked for replay), signed with an
RSA key published as a JWKS, a discovery document at `/.well-known/openid-configuration`,
a userinfo endpoint, and a login form a person (the test) fills in. It runs as a Starlette
app under uvicorn, in a thread, on a free port.

A provider can also misbehave on purpose (`Misbehaviour`), as a hostile or broken one
would: ID tokens already expired, altered after signing, signed with a key it does not
publish, or replayed from an earlier sign-in. The relying party must refuse each.

It also stands in for MyAccessID, the EuroHPC federation's eduGAIN proxy (which cannot run
here either): a person's claims may carry `eduperson_assurance` (REFEDS RAF) and
`eduperson_entitlement` (AARC-G002 groups), and a person with a second factor who types its
one-time code on the login form gets `acr` = the REFEDS MFA profile in their ID token (a
single-factor login gets the REFEDS SFA profile), as a proxy stepping up would.
"""

from __future__ import annotations

import html
import json
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientMixin,
    OAuth2Error,
    OAuth2Payload,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode, UserInfo
from authlib.oidc.core.models import AuthorizationCodeMixin
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from tests.servers import free_port

REFEDS_MFA = "https://refeds.org/profile/mfa"
REFEDS_SFA = "https://refeds.org/profile/sfa"


@dataclass
class Person:
    """Someone with an account at the provider, and the claims it releases about them."""

    username: str
    password: str
    claims: dict[str, Any]
    # The one-time code of their second factor (None: they have none).
    one_time_code: str | None = None


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    """A relying party registered with the provider (Fabriek)."""

    client_id: str
    client_secret: str
    redirect_uris: list[str] = field(default_factory=list)

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        allowed = {"openid", "profile", "email", "schac_home_organization", "eduperson_entitlement",
                   "eduperson_assurance"}  # fmt: skip
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "client_secret_basic"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class Code(AuthorizationCodeMixin):  # type: ignore[misc]
    """An authorization code, as the provider keeps it until it is redeemed (once)."""

    code: str
    client_id: str
    redirect_uri: str
    scope: str
    person: Person
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int
    acr: str | None = None

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> str | None:
        return self.acr


@dataclass
class Misbehaviour:
    """How the provider departs from the rules, for one test."""

    # Seconds an ID token is valid from when it is issued; negative: expired at birth.
    id_token_lifetime_s: int = 300
    # Rewrites the token endpoint's answer (say, swaps its ID token) before it is sent.
    token_answer: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    # Signs ID tokens with this key instead of the published one.
    signing_key: RSAKey | None = None


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._data = dict(pairs)
        self._datalist: dict[str, list[str]] = defaultdict(list)
        for k, v in pairs:
            self._datalist[k].append(v)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> dict[str, list[str]]:
        return self._datalist


class _Request(OAuth2Request):  # type: ignore[misc]
    """A Starlette request as Authlib's server reads it (query and form already read)."""

    def __init__(self, request: Request, form: list[tuple[str, str]]) -> None:
        super().__init__(request.method, str(request.url), headers=request.headers)
        self._args = dict(request.query_params)
        self._form = dict(form)
        self.payload = _Payload(list(request.query_params.multi_items()) + form)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class OidcProvider(AuthorizationServer):  # type: ignore[misc]
    """The provider: its people, its registered clients, and what it has issued."""

    def __init__(self, issuer: str) -> None:
        super().__init__(scopes_supported=["openid", "profile", "email", "schac_home_organization",
                                           "eduperson_entitlement", "eduperson_assurance"])  # fmt: skip
        self.issuer = issuer
        self.key = self.new_key("k1")
        self.people: dict[str, Person] = {}
        self.clients: dict[str, Client] = {}
        self.codes: dict[str, Code] = {}
        self.access_tokens: dict[str, tuple[Person, str]] = {}
        self.issued_id_tokens: list[str] = []
        # The `prompt` of each authorization request, in order ('' when none was asked).
        self.prompts: list[str] = []
        self.misbehaviour = Misbehaviour()
        self._lock = threading.Lock()
        provider = self

        class OpenIDConnect(OpenIDCode):  # type: ignore[misc]
            def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
                return any(c.nonce == nonce for c in provider.codes.values())

            def resolve_client_private_key(self, client: Client) -> RSAKey:
                return provider.misbehaviour.signing_key or provider.key

            def get_client_claims(self, client: Client) -> dict[str, Any]:
                now = int(time.time())
                return {
                    "iss": provider.issuer,
                    "aud": [client.client_id],
                    "iat": now,
                    "exp": now + provider.misbehaviour.id_token_lifetime_s,
                }

            def get_encode_header(self, client: Client) -> dict[str, str]:
                key = provider.misbehaviour.signing_key or provider.key
                return {"alg": "RS256", "kid": str(key.kid)}

            def generate_user_info(self, user: Person, scope: str) -> UserInfo:
                return UserInfo(user.claims)

        class CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic"]

            def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
                data = request.payload.data
                provider.codes[code] = Code(
                    code=code,
                    client_id=request.client.client_id,
                    redirect_uri=data.get("redirect_uri", ""),
                    scope=request.scope,
                    person=request.user,
                    nonce=data.get("nonce"),
                    code_challenge=data.get("code_challenge"),
                    code_challenge_method=data.get("code_challenge_method"),
                    auth_time=int(time.time()),
                    acr=getattr(request, "acr", None),
                )

            def query_authorization_code(self, code: str, client: Client) -> Code | None:
                found = provider.codes.get(code)
                return found if found and found.client_id == client.client_id else None

            def delete_authorization_code(self, authorization_code: Code) -> None:
                provider.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: Code) -> Person:
                return authorization_code.person

        self.register_grant(
            CodeGrant, [CodeChallenge(required=True), OpenIDConnect(require_nonce=True)]
        )
        self.register_token_generator(
            "default",
            BearerTokenGenerator(lambda **_kw: secrets.token_urlsafe(32)),
        )

    # -- what Authlib asks of a framework integration ---------------------------------------

    def query_client(self, client_id: str) -> Client | None:
        return self.clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        self.access_tokens[token["access_token"]] = (request.user, token.get("scope", ""))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        return request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Response:
        if isinstance(body, dict):
            return JSONResponse(body, status_code=status, headers=dict(headers))
        return Response(body, status_code=status, headers=dict(headers))

    # -- what the tests arrange --------------------------------------------------------------

    def register_client(self, client_id: str, secret: str, redirect_uri: str) -> None:
        with self._lock:
            client = self.clients.setdefault(client_id, Client(client_id, secret))
            client.redirect_uris.append(redirect_uri)

    def add_person(
        self, username: str, password: str, one_time_code: str | None = None, **claims: Any
    ) -> Person:
        person = Person(username, password, {"sub": secrets.token_hex(8), **claims},
                        one_time_code)  # fmt: skip
        self.people[username] = person
        return person

    @staticmethod
    def new_key(kid: str) -> RSAKey:
        """A fresh signing key (RSA, 2048 bits) named `kid`."""
        return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})

    def rotate_key(self, kid: str) -> None:
        """Sign with a new key from now on, and publish only it."""
        self.key = self.new_key(kid)

    def jwks(self) -> dict[str, Any]:
        return dict(KeySet([self.key]).as_dict(private=False))


def _login_form(params: list[tuple[str, str]], error: str | None = None) -> str:
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in params
    )
    alert = f'<p role="alert">{html.escape(error)}</p>' if error else ""
    return (
        "<!doctype html><title>Institution login</title><h1>Log in at your institution</h1>"
        f'{alert}<form method="post" action="/authorize">{hidden}'
        '<label>Username <input name="username"></label>'
        '<label>Password <input name="password" type="password"></label>'
        '<label>One-time code (if you have a second factor) <input name="otp"></label>'
        "<button>Log in</button></form>"
    )


def provider_app(provider: OidcProvider) -> Starlette:
    """The provider's HTTP endpoints."""

    async def discovery(request: Request) -> Response:
        base = provider.issuer
        return JSONResponse({
            "issuer": base,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "userinfo_endpoint": f"{base}/userinfo",
            "jwks_uri": f"{base}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": provider.scopes_supported,
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": ["sub", "name", "email", "preferred_username",
                                 "schac_home_organization", "acr", "eduperson_assurance",
                                 "eduperson_entitlement"],
            "acr_values_supported": [REFEDS_MFA, REFEDS_SFA],
        })  # fmt: skip

    async def jwks(request: Request) -> Response:
        return JSONResponse(provider.jwks())

    async def authorize(request: Request) -> Response:
        form = list(parse_qsl((await request.body()).decode())) if request.method == "POST" else []
        params = [(k, v) for k, v in form if k not in ("username", "password", "otp")]
        oauth_request = _Request(request, params)
        try:
            grant = provider.get_consent_grant(oauth_request)
        except OAuth2Error as bad:
            return HTMLResponse(f"<p>{html.escape(bad.get_error_description() or bad.error)}</p>"
                                f"<p>{html.escape(bad.error)}</p>", status_code=400)  # fmt: skip
        if request.method == "GET":
            provider.prompts.append(request.query_params.get("prompt", ""))
            return HTMLResponse(_login_form(list(request.query_params.multi_items())))
        given = dict(form)
        person = provider.people.get(given.get("username", ""))
        if person is None or not secrets.compare_digest(person.password, given.get("password", "")):
            return HTMLResponse(_login_form(params, "Wrong username or password."), 401)
        otp = given.get("otp", "")
        if otp and (person.one_time_code is None or
                    not secrets.compare_digest(otp, person.one_time_code)):  # fmt: skip
            return HTMLResponse(_login_form(params, "Wrong one-time code."), 401)
        oauth_request.user = person
        oauth_request.acr = REFEDS_MFA if otp else REFEDS_SFA
        response: Response = provider.create_authorization_response(
            oauth_request, grant_user=person, grant=grant
        )
        return response

    async def token(request: Request) -> Response:
        form = list(parse_qsl((await request.body()).decode()))
        response: Response = provider.create_token_response(_Request(request, form))
        rewrite = provider.misbehaviour.token_answer
        if response.status_code == 200:
            answer = json.loads(bytes(response.body))
            if isinstance(answer.get("id_token"), str):
                provider.issued_id_tokens.append(answer["id_token"])
            if rewrite is not None:
                answer = rewrite(answer)
            return JSONResponse(answer, headers={"Cache-Control": "no-store"})
        return response

    async def userinfo(request: Request) -> Response:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        found = provider.access_tokens.get(presented) if scheme.lower() == "bearer" else None
        if found is None:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse(found[0].claims)

    return Starlette(routes=[
        Route("/.well-known/openid-configuration", discovery),
        Route("/jwks", jwks),
        Route("/authorize", authorize, methods=["GET", "POST"]),
        Route("/token", token, methods=["POST"]),
        Route("/userinfo", userinfo, methods=["GET", "POST"]),
    ])  # fmt: skip


@contextmanager
def running_provider() -> Iterator[OidcProvider]:
    """The provider served by uvicorn in a thread on a free loopback port."""
    port = free_port()
    provider = OidcProvider(f"http://127.0.0.1:{port}")
    config = uvicorn.Config(provider_app(provider), host="127.0.0.1", port=port,
                            log_level="warning")  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test OpenID Connect provider did not start")
        time.sleep(0.02)
    try:
        yield provider
    finally:
        server.should_exit = True
        thread.join(timeout=10)
