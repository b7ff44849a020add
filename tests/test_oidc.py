"""Sign-in through an OpenID Connect provider, end to end: a person logs in on a real
provider's login form (tests/oidc_provider.py, on loopback), the callback signs them into
the portal, and every way the answer can be wrong is refused with a page that says why."""

from __future__ import annotations

import base64
import html
import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt

from fabriek.services.demo.seed import demo_token
from fabriek.settings import Settings
from fabriek.web.identity.oidc import STATE_COOKIE
from tests.conftest import BACKENDS, Client
from tests.oidc_provider import Misbehaviour, OidcProvider, running_provider
from tests.servers import (
    LiveServer,
    live_server,
    postgres_unavailable,
    prepare,
    throwaway_database,
)

CLIENT_ID = "fabriek-portal"
CLIENT_SECRET = secrets.token_urlsafe(24)
PASSWORD = "correct horse battery staple"
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    with running_provider() as running:
        yield running


@pytest.fixture(scope="module", params=BACKENDS)
def portal(
    request: pytest.FixtureRequest,
    provider: OidcProvider,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveServer]:
    """Fabriek with OIDC sign-in through the test provider, on a database of its own (its
    settings differ from the shared server's)."""
    if request.param == "postgresql" and (reason := postgres_unavailable()):
        pytest.skip(reason)
    tmp: Path = tmp_path_factory.mktemp("oidc")
    with throwaway_database(request.param, tmp) as url:
        prepare(url)
        settings = Settings(
            database_url=url,
            state_dir=tmp / "state",
            dispatch_interval_s=5.0,
            oidc_issuer=provider.issuer,
            oidc_client_id=CLIENT_ID,
            oidc_client_secret=CLIENT_SECRET,
        )
        with live_server(settings) as live:
            # The port, and so the callback address, is known only once the server is up.
            live.settings.public_url = live.url
            provider.register_client(CLIENT_ID, CLIENT_SECRET, f"{live.url}/signin/oidc/callback")
            yield live


@pytest.fixture(autouse=True)
def well_behaved(provider: OidcProvider) -> Iterator[None]:
    yield
    provider.misbehaviour = Misbehaviour()


class Browser:
    """A person's browser: keeps cookies, follows redirects, fills in forms."""

    def __init__(self, portal: LiveServer) -> None:
        self.http = httpx.Client(base_url=portal.url, follow_redirects=True, timeout=30)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.http.close()

    def start(self, next: str = "/notifications") -> httpx.Response:
        """Click 'Sign in with your institution': lands on the provider's login form."""
        form = self.http.get("/signin/oidc", params={"next": next})
        assert form.status_code == 200 and "Log in at your institution" in form.text, form.text
        return form

    def log_in(
        self, form: httpx.Response, username: str, follow: bool = True, otp: str = ""
    ) -> httpx.Response:
        """Fill in the provider's form (`otp`: a second factor's one-time code); with
        `follow`, on to Fabriek's callback."""
        fields = {k: html.unescape(v) for k, v in HIDDEN.findall(form.text)}
        return self.http.post(
            form.url.join("/authorize"),
            data={**fields, "username": username, "password": PASSWORD, "otp": otp},
            follow_redirects=follow,
        )

    def sign_in(self, username: str, next: str = "/notifications", otp: str = "") -> httpx.Response:
        return self.log_in(self.start(next), username, otp=otp)


def _person(provider: OidcProvider, name: str, organisation: str | None, **claims: Any) -> str:
    released: dict[str, Any] = {
        "preferred_username": name,
        "email": f"{name}@{organisation or 'example.org'}",
        "name": f"Test {name.title()}",
    }
    if organisation:
        released["schac_home_organization"] = organisation
    provider.add_person(name, PASSWORD, **{**released, **claims})
    return name


def _username_on(page: httpx.Response) -> str:
    found = re.search(r"<strong>([a-z][a-z0-9._-]+)</strong>", page.text)
    assert found, page.text
    return found.group(1)


def _admin(portal: LiveServer) -> httpx.Client:
    return httpx.Client(
        base_url=portal.url,
        headers={"Authorization": f"Bearer {demo_token('admin').token}"},
        timeout=30,
    )


def test_sign_in_page_offers_the_institution(portal: LiveServer) -> None:
    page = httpx.get(f"{portal.url}/signin", params={"next": "/tokens"})
    assert page.status_code == 200
    assert 'href="/signin/oidc?next=/tokens"' in page.text.replace("%2F", "/")
    assert "Sign in with your institution" in page.text


def test_a_new_person_signs_in_joins_their_organisation_and_makes_a_cli_token(
    portal: LiveServer, provider: OidcProvider, unique: str
) -> None:
    name = _person(provider, unique, "TUDelft.nl")
    with Browser(portal) as browser, _admin(portal) as admin:
        form = browser.start()
        asked = parse_qs(urlsplit(str(form.url)).query)
        assert asked["code_challenge_method"] == ["S256"] and asked["code_challenge"][0]
        assert asked["nonce"][0] and asked["state"][0] and asked["client_id"] == [CLIENT_ID]
        assert "openid" in asked["scope"][0].split()
        done = browser.log_in(form, name)
        assert done.status_code == 200, done.text
        assert done.url.path == "/signin/oidc/callback"
        assert "Welcome to the factory" in done.text
        assert "Technische Universiteit Delft" in done.text
        username = _username_on(done)
        assert username == unique
        cookie = next(v for k, v in done.headers.multi_items()
                      if k == "set-cookie" and v.startswith("fabriek_token="))  # fmt: skip
        assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
        assert browser.http.get("/notifications").status_code == 200

        # The command line still works with tokens: one made on the portal's token page.
        made = browser.http.post("/tokens", data={"name": "laptop", "days": "30"})
        assert made.status_code == 201, made.text
        found = re.search(r'<code id="new-token">(fbk_[^<]+)</code>', made.text)
        assert found is not None
        cli = httpx.Client(base_url=portal.url, timeout=30,
                           headers={"Authorization": f"Bearer {found.group(1)}"})  # fmt: skip
        me = cli.get("/api/v1/whoami").json()
        assert me["username"] == username and me["projects"] == {}
        listed = browser.http.get("/tokens").text
        assert "laptop" in listed and "OpenID Connect" not in listed

        user = admin.get(f"/api/v1/users/{username}").json()
        delft = admin.get("/api/v1/organisations", params={"name": "Delft"}).json()["items"][0]
        assert user["organisation_id"] == delft["id"] and delft["domain"] == "tudelft.nl"
        assert user["email"] == f"{unique}@tudelft.nl"
        entries = admin.get(
            "/api/v1/audit", params={"actor": username, "action": "sign-in"}
        ).json()["items"]
        assert len(entries) == 1
        assert entries[0]["detail"]["method"] == "openid-connect"
        assert entries[0]["detail"]["issuer"] == provider.issuer
        assert entries[0]["detail"]["new_user"] is True
        assert entries[0]["detail"]["subject"] == provider.people[name].claims["sub"]

        key = re.search(r'action="/tokens/([0-9a-f]{12})/revoke"', listed)
        assert key is not None
        assert browser.http.post(f"/tokens/{key.group(1)}/revoke").status_code == 200
        assert cli.get("/api/v1/whoami").status_code == 401
        cli.close()


def test_a_returning_person_is_matched_by_subject_not_by_username(
    portal: LiveServer, provider: OidcProvider, unique: str
) -> None:
    first = _person(provider, unique, "uu.nl")
    with Browser(portal) as browser:
        username = _username_on(browser.sign_in(first))
    # At the provider, the person changes their username, e-mail address and name...
    person = provider.people[first]
    person.claims.update(preferred_username=f"{unique}x", email=f"{unique}.new@uu.nl",
                         name="Renamed Person")  # fmt: skip
    with Browser(portal) as browser:
        again = browser.sign_in(first)
        assert again.status_code == 200 and "Welcome back" in again.text
        assert _username_on(again) == username
    # ...and someone else (another subject) calls themselves what the first one was called.
    other = _person(provider, f"{unique}o", "uu.nl", preferred_username=unique)
    with Browser(portal) as browser:
        theirs = browser.sign_in(other)
        assert "Welcome to the factory" in theirs.text
        assert _username_on(theirs) == f"{unique}-2"
    with _admin(portal) as admin:
        user = admin.get(f"/api/v1/users/{username}").json()
        assert user["email"] == f"{unique}.new@uu.nl" and user["full_name"] == "Renamed Person"
        entries = admin.get("/api/v1/audit", params={"actor": username, "action": "sign-in"})
        assert [e["detail"]["new_user"] for e in entries.json()["items"]] == [False, True]


def test_an_unknown_organisation_gets_an_account_without_projects_and_a_next_step(
    portal: LiveServer, provider: OidcProvider, unique: str
) -> None:
    domain = f"{unique}.example.nl"
    name = _person(provider, unique, domain)
    with Browser(portal) as browser:
        page = browser.sign_in(name)
        assert page.status_code == 200
        said = " ".join(page.text.split())
        assert "not yet known to this factory" in said and domain in said
        assert "Ask your regional AI hub to onboard it" in said
    username = _username_on(page)
    with _admin(portal) as admin:
        assert admin.get(f"/api/v1/users/{username}").json()["organisation_id"] is None
        # The hub onboards the organisation, then gives it its domain.
        made = admin.post("/api/v1/organisations", json={
            "name": f"Org {unique}", "kind": "start-up", "province": "Utrecht"})  # fmt: skip
        assert made.status_code == 201, made.text
        bad = admin.patch(f"/api/v1/organisations/{made.json()['id']}", json={"domain": "no"})
        assert bad.status_code == 422
        set_domain = admin.patch(
            f"/api/v1/organisations/{made.json()['id']}", json={"domain": domain.upper()}
        )
        assert set_domain.status_code == 200 and set_domain.json()["domain"] == domain
        delft = admin.get("/api/v1/organisations", params={"name": "Delft"}).json()["items"][0]
        taken = admin.patch(f"/api/v1/organisations/{delft['id']}", json={"domain": domain})
        assert taken.status_code == 409 and domain in taken.json()["detail"]
        twice = admin.post("/api/v1/organisations", json={
            "name": f"Other {unique}", "kind": "sme", "province": "Utrecht", "domain": domain})  # fmt: skip
        assert twice.status_code == 409
        hanna = {"Authorization": f"Bearer {demo_token('hanna').token}"}  # Brainport's hub
        elsewhere = admin.patch(f"/api/v1/organisations/{made.json()['id']}",
                                json={"domain": None}, headers=hanna)  # fmt: skip
        assert elsewhere.status_code == 403
        with Browser(portal) as browser:
            assert f"Org {unique}" in browser.sign_in(name).text
        assert admin.get(f"/api/v1/users/{username}").json()["organisation_id"] == made.json()["id"]


def test_an_email_address_of_an_existing_account_is_not_taken_over(
    portal: LiveServer, provider: OidcProvider, unique: str
) -> None:
    # The provider says this person has maria's address: that is no reason to be maria.
    name = _person(provider, unique, "tudelft.nl", email="maria@demo.fabriek.example")
    with Browser(portal) as browser:
        page = browser.sign_in(name)
        assert page.status_code == 409 and "already exists" in page.text
        assert browser.http.get("/notifications", follow_redirects=False).status_code == 303


def test_a_callback_from_another_browser_or_with_another_state_is_refused(
    portal: LiveServer, provider: OidcProvider, unique: str
) -> None:
    name = _person(provider, unique, "rug.nl")
    with Browser(portal) as browser, Browser(portal) as stranger:
        back = browser.log_in(browser.start(), name, follow=False)
        assert back.status_code == 302
        callback = back.headers["location"]
        state = parse_qs(urlsplit(callback).query)["state"][0]
        # Another browser (login CSRF): it has no state cookie.
        refused = stranger.http.get(callback)
        assert refused.status_code == 400 and "state does not match" in refused.text
        assert 'role="alert"' in refused.text
        # The right browser, but the state altered on the way.
        altered = callback.replace(state, state[:-2] + ("AA" if not state.endswith("AA") else "BB"))
        refused = httpx.get(altered, cookies={STATE_COOKIE: state})
        assert refused.status_code == 400 and "state does not match" in refused.text
        assert "fabriek_token" not in refused.headers.get("set-cookie", "")
        odd = httpx.get(f"{portal.url}/signin/oidc/callback", params={"state": "é"},
                        cookies={STATE_COOKIE: state})  # fmt: skip
        assert odd.status_code == 400
        # The browser that started it finishes it, once.
        assert browser.http.get(callback).status_code == 200
        again = httpx.get(callback, cookies={STATE_COOKIE: state})
        assert again.status_code == 400 and "finished already" in again.text


def test_an_error_from_the_provider_is_shown(portal: LiveServer) -> None:
    with Browser(portal) as browser:
        form = browser.start()
        state = parse_qs(urlsplit(str(form.url)).query)["state"][0]
        page = browser.http.get("/signin/oidc/callback", params={
            "state": state, "error": "access_denied", "error_description": "Cancelled"})  # fmt: skip
        assert page.status_code == 403
        assert "did not sign you in (access_denied: Cancelled)" in page.text


def _claims(id_token: str) -> dict[str, Any]:
    payload = id_token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def _with_claims(id_token: str, **changes: Any) -> str:
    """The token with its payload changed and its signature left as it was."""
    head, _payload, signature = id_token.split(".")
    body = json.dumps({**_claims(id_token), **changes}).encode()
    return f"{head}.{base64.urlsafe_b64encode(body).rstrip(b'=').decode()}.{signature}"


def _refused(portal: LiveServer, name: str) -> httpx.Response:
    with Browser(portal) as browser:
        page = browser.sign_in(name)
        assert "fabriek_token" not in str(browser.http.cookies.keys())
        assert browser.http.get("/notifications", follow_redirects=False).status_code == 303
    return page


def test_an_altered_forged_or_misaddressed_id_token_is_refused(
    portal: LiveServer, provider: OidcProvider, unique: str
) -> None:
    name = _person(provider, unique, "tno.nl")
    admin_sub = "someone-else"
    provider.misbehaviour.token_answer = lambda a: {
        **a, "id_token": _with_claims(a["id_token"], sub=admin_sub)}  # fmt: skip
    altered = _refused(portal, name)
    assert altered.status_code == 401 and "ID token is not valid (bad_signature" in altered.text

    forger = OidcProvider.new_key(str(provider.key.kid))
    provider.misbehaviour = Misbehaviour(signing_key=forger)
    forged = _refused(portal, name)
    assert forged.status_code == 401 and "bad_signature" in forged.text

    def for_someone_else(answer: dict[str, Any]) -> dict[str, Any]:
        claims = {**_claims(answer["id_token"]), "aud": "another-client"}
        token = jwt.encode({"alg": "RS256", "kid": provider.key.kid}, claims, provider.key)
        return {**answer, "id_token": token}

    provider.misbehaviour = Misbehaviour(token_answer=for_someone_else)
    misaddressed = _refused(portal, name)
    assert misaddressed.status_code == 401 and "invalid_claim" in misaddressed.text

    with _admin(portal) as admin:
        assert admin.get(f"/api/v1/users/{unique}").status_code == 404


def test_an_expired_id_token_is_refused(
    portal: LiveServer, provider: OidcProvider, unique: str
) -> None:
    name = _person(provider, unique, "fontys.nl")
    provider.misbehaviour.id_token_lifetime_s = -3600
    page = _refused(portal, name)
    assert page.status_code == 401 and "has expired" in page.text


def test_a_replayed_id_token_is_refused_by_its_nonce(
    portal: LiveServer, provider: OidcProvider, unique: str
) -> None:
    name = _person(provider, unique, "hu.nl")
    with Browser(portal) as browser:
        assert browser.sign_in(name).status_code == 200
    captured = provider.issued_id_tokens[-1]
    assert _claims(captured)["sub"] == provider.people[name].claims["sub"]
    # Valid, unexpired, signed by the provider for this client: but minted for the earlier
    # sign-in's nonce, not this one's.
    provider.misbehaviour.token_answer = lambda a: {**a, "id_token": captured}
    page = _refused(portal, name)
    assert page.status_code == 401 and "invalid_claim" in page.text and "nonce" in page.text


def test_a_rotated_provider_key_is_picked_up(
    portal: LiveServer, provider: OidcProvider, unique: str
) -> None:
    name = _person(provider, unique, "maastrichtuniversity.nl")
    with Browser(portal) as browser:
        assert browser.sign_in(name).status_code == 200  # the keys are read and kept
    provider.rotate_key(f"k-{unique}")
    with Browser(portal) as browser:
        again = browser.sign_in(name)
        assert again.status_code == 200 and "Welcome back" in again.text


def test_a_code_is_useless_without_the_pkce_verifier(
    portal: LiveServer, provider: OidcProvider, unique: str
) -> None:
    name = _person(provider, unique, "utwente.nl")
    with Browser(portal) as browser:
        back = browser.log_in(browser.start(), name, follow=False)
        code = parse_qs(urlsplit(back.headers["location"]).query)["code"][0]
        stolen = httpx.post(
            f"{provider.issuer}/token",
            data={"grant_type": "authorization_code", "code": code,
                  "redirect_uri": f"{portal.url}/signin/oidc/callback"},
            auth=(CLIENT_ID, CLIENT_SECRET),
        )  # fmt: skip
        assert stolen.status_code == 400 and "code_verifier" in stolen.json()["error_description"]


def test_a_misconfigured_provider_is_reported(portal: LiveServer, provider: OidcProvider) -> None:
    settings = portal.settings
    try:
        # A look-alike: the discovery document names another issuer than the one configured.
        settings.oidc_issuer = provider.issuer + "/"
        page = httpx.get(f"{portal.url}/signin/oidc")
        assert page.status_code == 502 and "calls itself" in page.text
        settings.oidc_issuer, settings.oidc_client_id = provider.issuer, None
        page = httpx.get(f"{portal.url}/signin/oidc")
        assert page.status_code == 503 and "FABRIEK_OIDC_CLIENT_ID" in page.text
    finally:
        settings.oidc_issuer, settings.oidc_client_id = provider.issuer, CLIENT_ID


def test_without_an_issuer_there_is_no_institution_sign_in(client: Client) -> None:
    anonymous = client()
    assert "Sign in with your institution" not in anonymous.get("/signin").text
    page = anonymous.get("/signin/oidc")
    assert page.status_code == 404 and "API token" in page.text
