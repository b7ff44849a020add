"""European identities, end to end through the portal and the API: sign-in through a real
OpenID Connect provider on loopback (tests/oidc_provider.py) standing in for MyAccessID, the
EuroHPC federation's eduGAIN proxy, which cannot run here.

- assurance and MFA (`eduperson_assurance`, `acr`) against the operator's minimum per role
  and per access track: a sign-in below it is refused with what is missing, and a token keeps
  the assurance it was issued under, so a role's API use needs a sign-in that met it;
- entitlements (`eduperson_entitlement`) add and remove the project memberships they manage;
- a person links a second identity to their account by signing in with both in one browser
  session and confirming, never by a shared e-mail address; and unlinks it again.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select

from fabriek.domain.identity.assurance import REFEDS_MFA
from fabriek.settings import Settings
from fabriek.store.db import make_engine
from fabriek.store.tables import StaffRoleRow, UserRow
from tests.conftest import BACKENDS
from tests.oidc_provider import OidcProvider, running_provider
from tests.servers import LiveServer, live_server, postgres_unavailable, prepare, throwaway_database
from tests.test_oidc import CLIENT_ID, CLIENT_SECRET, PASSWORD, Browser, _admin, _username_on

PREFIX = "urn:geant:myaccessid.example:group:fabriek"
AUTHORITY = "aai.myaccessid.example"
IAP_MEDIUM = "https://refeds.org/assurance/IAP/medium"
OTP = "246810"


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
    """Fabriek whose operator asks identity assurance 'medium' and MFA of admins, MFA of the
    members of Large Scale projects, and takes memberships from the platform's entitlements."""
    if request.param == "postgresql" and (reason := postgres_unavailable()):
        pytest.skip(reason)
    tmp: Path = tmp_path_factory.mktemp("federation")
    with throwaway_database(request.param, tmp) as url:
        prepare(url)
        settings = Settings(
            database_url=url,
            state_dir=tmp / "state",
            dispatch_interval_s=5.0,
            oidc_issuer=provider.issuer,
            oidc_client_id=CLIENT_ID,
            oidc_client_secret=CLIENT_SECRET,
            assurance_minimums="admin=medium+mfa, track:large-scale=mfa",
            oidc_entitlement_prefix=PREFIX + ":",
            oidc_entitlement_authority=AUTHORITY,
        )
        with live_server(settings) as live:
            live.settings.public_url = live.url
            provider.register_client(CLIENT_ID, CLIENT_SECRET, f"{live.url}/signin/oidc/callback")
            yield live


def _person(provider: OidcProvider, name: str, **claims: Any) -> str:
    provider.add_person(name, PASSWORD, one_time_code=OTP, **{
        "preferred_username": name, "email": f"{name}@uu.nl", "name": f"Test {name.title()}",
        "schac_home_organization": "uu.nl", **claims})  # fmt: skip
    return name


def _session_token(browser: Browser) -> str:
    token = browser.http.cookies.get("fabriek_token")
    assert token, "not signed in"
    return token


def _api(portal: LiveServer, token: str) -> httpx.Client:
    return httpx.Client(base_url=portal.url, timeout=30,
                        headers={"Authorization": f"Bearer {token}"})  # fmt: skip


def _make_admin(portal: LiveServer, username: str) -> None:
    """The operator makes someone an admin in the store."""
    engine = make_engine(portal.settings.database_url)
    with engine.begin() as db:
        user_id = db.scalar(select(UserRow.id).where(UserRow.username == username))
        db.execute(insert(StaffRoleRow).values(user_id=user_id, role="admin", scope=None))
    engine.dispose()


def _audit(admin: httpx.Client, **params: str) -> list[dict[str, Any]]:
    found = admin.get("/api/v1/audit", params=params)
    assert found.status_code == 200, found.text
    items: list[dict[str, Any]] = found.json()["items"]
    return items


def _said(page: httpx.Response) -> str:
    return " ".join(page.text.split())


def test_an_admin_signs_in_only_with_the_assurance_and_mfa_the_operator_asks(
    portal: LiveServer, provider: OidcProvider, unique: str
) -> None:
    name = _person(provider, unique)
    with Browser(portal) as browser:
        first = browser.sign_in(name)
        assert first.status_code == 200, first.text
        username = _username_on(first)
        with _api(portal, _session_token(browser)) as me:
            assert me.get("/api/v1/whoami").json()["assurance"] == "none"
    _make_admin(portal, username)

    with Browser(portal) as browser:
        refused = browser.sign_in(name)
        said = _said(refused)
        assert refused.status_code == 403 and 'role="alert"' in refused.text
        assert "admin needs identity assurance of at least medium" in said
        assert IAP_MEDIUM in said and REFEDS_MFA in said and "single factor" in said
        assert "fabriek_token" not in browser.http.cookies
    # The institution now vouches for medium assurance, but the person skips the second factor.
    provider.people[name].claims["eduperson_assurance"] = [
        "https://refeds.org/assurance/IAP/low", IAP_MEDIUM]  # fmt: skip
    with Browser(portal) as browser:
        refused = browser.sign_in(name)
        assert refused.status_code == 403
        assert "multi-factor" in _said(refused) and "at least medium" not in _said(refused)
    with Browser(portal) as browser:
        done = browser.sign_in(name, otp=OTP)
        assert done.status_code == 200 and "Welcome back" in done.text
        with _api(portal, _session_token(browser)) as me:
            who = me.get("/api/v1/whoami").json()
            assert who["assurance"] == "medium+mfa" and who["withheld_roles"] == []
            assert me.get("/api/v1/users", params={"q": username}).status_code == 200
    with _admin(portal) as admin:
        refusals = _audit(admin, actor=username, action="sign-in-refused")
        assert [e["detail"]["assurance"] for e in refusals] == ["medium", "none"]
        assert "admin needs" in refusals[1]["detail"]["missing"][0]
        signed = _audit(admin, actor=username, action="sign-in")
        assert [e["detail"]["assurance"] for e in signed] == ["medium+mfa", "none"]


def test_a_token_can_use_only_the_roles_its_sign_in_was_sure_enough_for(
    portal: LiveServer, provider: OidcProvider, unique: str
) -> None:
    name = _person(provider, unique)
    with Browser(portal) as browser:
        username = _username_on(browser.sign_in(name))
        made = browser.http.post("/tokens", data={"name": "laptop", "days": "30"})
        found = re.search(r'<code id="new-token">(fbk_[^<]+)</code>', made.text)
        assert made.status_code == 201 and found is not None
    cli_token = found.group(1)
    # Made admin after the token was made through a single-factor sign-in.
    _make_admin(portal, username)
    with _api(portal, cli_token) as cli:
        who = cli.get("/api/v1/whoami").json()
        assert who["staff_roles"] == ["admin"] and who["assurance"] == "none"
        assert "admin needs" in who["withheld_roles"][0]
        refused = cli.get("/api/v1/users")
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("application/problem+json")
        detail = refused.json()["detail"]
        assert "only admins" in detail and "did not meet the factory's minimum" in detail
        assert "multi-factor authentication" in detail
        # A token made with it is no surer than it.
        child = cli.post("/api/v1/tokens", json={"name": "child"}).json()["token"]
    with _api(portal, child) as again:
        assert again.get("/api/v1/whoami").json()["assurance"] == "none"
        assert again.get("/api/v1/users").status_code == 403
    provider.people[name].claims["eduperson_assurance"] = IAP_MEDIUM
    with Browser(portal) as browser:
        assert browser.sign_in(name, otp=OTP).status_code == 200
        with _api(portal, _session_token(browser)) as session:
            sure = session.post("/api/v1/tokens", json={"name": "sure"}).json()["token"]
    with _api(portal, sure) as cli:
        assert cli.get("/api/v1/whoami").json()["assurance"] == "medium+mfa"
        assert cli.get("/api/v1/users").status_code == 200


def _project(admin: httpx.Client, name: str) -> None:
    orgs = admin.get("/api/v1/organisations", params={"name": "Delft"}).json()["items"]
    made = admin.post("/api/v1/projects", json={
        "name": name, "title": f"Project {name}", "organisation_id": orgs[0]["id"]})  # fmt: skip
    assert made.status_code == 201, made.text


def _members(admin: httpx.Client, project: str) -> dict[str, str]:
    found = admin.get(f"/api/v1/projects/{project}/members")
    assert found.status_code == 200, found.text
    return {m["username"]: m["role"] for m in found.json()}


def test_entitlements_add_change_and_remove_memberships_but_not_those_made_by_hand(
    portal: LiveServer, provider: OidcProvider, unique: str
) -> None:
    a, b, c = f"{unique}-a", f"{unique}-b", f"{unique}-c"
    with _admin(portal) as admin:
        for project in (a, b, c):
            _project(admin, project)
    name = _person(provider, unique, eduperson_entitlement=[
        f"{PREFIX}:{a}#{AUTHORITY}",
        f"{PREFIX}:{b}:role=pi#{AUTHORITY}",
        f"{PREFIX}:{unique}-nowhere#{AUTHORITY}",  # no such project here
        f"{PREFIX}:{c}#someone-else.example",  # an authority not believed
        f"urn:geant:other.example:group:{c}#{AUTHORITY}",  # another community's group
    ])  # fmt: skip
    with Browser(portal) as browser:
        page = browser.sign_in(name)
        assert page.status_code == 200, page.text
        username = _username_on(page)
    with _admin(portal) as admin:
        assert _members(admin, a) == {username: "member"}
        assert _members(admin, b) == {username: "principal-investigator"}
        assert _members(admin, c) == {}
        # A lead adds them to c by hand: that membership is Fabriek's, not the platform's.
        added = admin.post(f"/api/v1/projects/{c}/members",
                           json={"username": username, "role": "member"})  # fmt: skip
        assert added.status_code == 201, added.text
    provider.people[name].claims["eduperson_entitlement"] = [
        f"{PREFIX}:{b}:role=member#{AUTHORITY}", f"{PREFIX}:{c}:role=pi#{AUTHORITY}"]  # fmt: skip
    with Browser(portal) as browser:
        assert browser.sign_in(name).status_code == 200
    with _admin(portal) as admin:
        assert _members(admin, a) == {}
        assert _members(admin, b) == {username: "member"}
        assert _members(admin, c) == {username: "member"}  # untouched
        changes = [(e["detail"]["change"], e["detail"]["role"])
                   for e in _audit(admin, actor=username, action="entitlement")]  # fmt: skip
        assert sorted(changes) == sorted([
            ("member-add", "member"), ("member-add", "principal-investigator"),
            ("member-role", "member"), ("member-remove", "member")])  # fmt: skip
        signed = _audit(admin, actor=username, action="sign-in")
        assert signed[0]["detail"]["memberships"] == [
            {"change": "member-role", "project": b, "role": "member"},
            {"change": "member-remove", "project": a, "role": "member"},
        ]


def test_a_large_scale_project_needs_mfa_of_its_members(
    portal: LiveServer, provider: OidcProvider, unique: str
) -> None:
    project = f"{unique}-ls"
    with _admin(portal) as admin:
        _project(admin, project)
        granted = admin.post("/api/v1/allocations", json={
            "project": project, "track": "large-scale", "gpu_hours": {"any": 60000}})  # fmt: skip
        assert granted.status_code == 201, granted.text
    name = _person(provider, unique, eduperson_entitlement=[f"{PREFIX}:{project}#{AUTHORITY}"])
    with Browser(portal) as browser:
        refused = browser.sign_in(name)
        assert refused.status_code == 403
        assert f"member of project {project} needs multi-factor" in _said(refused)
    with _admin(portal) as admin:
        # Refused: nothing the sign-in would have changed is kept, not even the account.
        assert _members(admin, project) == {}
        assert admin.get(f"/api/v1/users/{unique}").status_code == 404
    with Browser(portal) as browser:
        page = browser.sign_in(name, otp=OTP)
        assert page.status_code == 200, page.text
        username = _username_on(page)
    with _admin(portal) as admin:
        assert _members(admin, project) == {username: "member"}


def _link(browser: Browser, provider: OidcProvider, name: str) -> httpx.Response:
    """On the identities page, 'Link another identity', and log in as `name` at the
    provider: back on the page that asks to confirm."""
    asked = len(provider.prompts)
    form = browser.http.post("/account/identities/link")
    assert form.status_code == 200 and "Log in at your institution" in form.text, form.text
    assert provider.prompts[asked:] == ["login"]  # not the provider's session of the first
    return browser.log_in(form, name)


def _offer_key(page: httpx.Response) -> str:
    found = re.search(r'name="key" value="([^"]+)"', page.text)
    assert found is not None, page.text
    return found.group(1)


def test_a_second_identity_is_linked_only_by_a_confirmed_sign_in_with_both(
    portal: LiveServer, provider: OidcProvider, unique: str
) -> None:
    home = _person(provider, unique)
    # The platform identity has the same e-mail address: not a reason to join them.
    platform = _person(provider, f"{unique}m", email=f"{unique}@uu.nl")
    other = _person(provider, f"{unique}o")
    with Browser(portal) as mine, Browser(portal) as elsewhere, Browser(portal) as theirs:
        username = _username_on(mine.sign_in(home))
        refused = elsewhere.sign_in(platform)
        assert refused.status_code == 409 and "/account/identities" in refused.text
        assert "fabriek_token" not in elsewhere.http.cookies
        listed = mine.http.get("/account/identities")
        assert listed.status_code == 200 and listed.text.count("<td><code>") == 1

        confirm = _link(mine, provider, platform)
        assert confirm.status_code == 200, confirm.text
        said = _said(confirm)
        assert "Link this identity?" in said and f"{unique}@uu.nl" in said
        assert provider.people[platform].claims["sub"] in said
        key = _offer_key(confirm)
        # Someone else's session cannot confirm it, and nothing is linked until confirmed.
        username_o = _username_on(theirs.sign_in(other))
        stolen = theirs.http.post("/account/identities/confirm",
                                  data={"key": key, "answer": "confirm"})  # fmt: skip
        assert stolen.status_code == 404
        assert mine.http.get("/account/identities").text.count("<td><code>") == 1
        done = mine.http.post("/account/identities/confirm", data={"key": key, "answer": "confirm"})
        assert done.status_code == 200 and done.text.count("<td><code>") == 2
        assert "Linked" in done.text
        again = mine.http.post("/account/identities/confirm",
                               data={"key": key, "answer": "confirm"})  # fmt: skip
        assert again.status_code == 404

        # The platform identity now signs in to the same account.
        back = elsewhere.sign_in(platform)
        assert back.status_code == 200 and "Welcome back" in back.text
        assert _username_on(back) == username
        # An identity of another account is not moved.
        moved = _link(theirs, provider, home)
        assert moved.status_code == 409 and "another account" in moved.text
        assert username_o != username
        with _admin(portal) as admin:
            linked = _audit(admin, actor=username, action="identity-link")
            assert len(linked) == 1
            detail = linked[0]["detail"]
            assert detail["identity"]["subject"] == provider.people[platform].claims["sub"]
            assert detail["signed_in_with"]["subject"] == provider.people[home].claims["sub"]

        # Through the API, with the platform identity's session: unlink the home one.
        with _api(portal, _session_token(elsewhere)) as api:
            identities = api.get("/api/v1/identities").json()
            assert [i["current"] for i in identities] == [False, True]
            home_id, platform_id = identities[0]["id"], identities[1]["id"]
            current = api.delete(f"/api/v1/identities/{platform_id}")
            assert current.status_code == 409 and "signed in with" in current.json()["detail"]
            assert api.delete(f"/api/v1/identities/{home_id}").status_code == 204
            assert api.delete(f"/api/v1/identities/{home_id}").status_code == 404
            assert [i["id"] for i in api.get("/api/v1/identities").json()] == [platform_id]
        # The home identity's session token was revoked with it.
        with _api(portal, _session_token(mine)) as old:
            assert old.get("/api/v1/whoami").status_code == 401
        with _admin(portal) as admin:
            unlinked = _audit(admin, actor=username, action="identity-unlink")
            assert unlinked[0]["detail"]["identity"]["id"] == home_id
            assert unlinked[0]["detail"]["tokens_revoked"] == 1
    # Unlinked, the home identity is a stranger again, and not silently re-joined by e-mail.
    with Browser(portal) as fresh:
        assert fresh.sign_in(home).status_code == 409


def test_a_link_can_be_cancelled(portal: LiveServer, provider: OidcProvider, unique: str) -> None:
    home, platform = _person(provider, unique), _person(provider, f"{unique}m")
    with Browser(portal) as mine:
        mine.sign_in(home)
        key = _offer_key(_link(mine, provider, platform))
        cancelled = mine.http.post("/account/identities/confirm",
                                   data={"key": key, "answer": "cancel"})  # fmt: skip
        assert cancelled.status_code == 200 and cancelled.text.count("<td><code>") == 1
    with Browser(portal) as other:
        page = other.sign_in(platform)
        assert page.status_code == 200 and "Welcome to the factory" in page.text
