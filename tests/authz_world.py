"""The people and objects the authorisation matrix (tests/test_authz_matrix.py) asks about,
made through the API on the live test server; and the application's route table.

The subject's tenant is a fresh start-up in Noord-Brabant (AI hub Brainport) with one
project, its principal investigator and a member; the other tenant is a member of a project
of another organisation. Staff are the demo's people: rita (reviewer), eva (access team),
hanna (hub staff of Brainport), henk (hub staff of Noord-Nederland), otto (operator of
site amsterdam) and admin. The subject's people are made here, not taken from the demo,
so no other test sees its demo users gain a project. Two callers are no person: the agents
of two sites registered here, each with its site's token (`fsa_...`); the subject site is
the first's.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cached_property
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import TypeAdapter
from sqlalchemy import select
from starlette.routing import BaseRoute, Mount, Route

from fabriek.domain.identity.people import TokenDraft
from fabriek.services.demo.seed import demo_token
from fabriek.services.identity.tokens import issue_token
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import UserIdentityRow, UserRow
from fabriek.web.layout import TOKEN_COOKIE
from tests.oidc_provider import OidcProvider, running_provider
from tests.people import accept_factory_terms
from tests.servers import LiveServer

API = "/api/v1"


class Who(StrEnum):
    """The roles every route is asked about, one column of the matrix each."""

    ANONYMOUS = "anonymous"
    MEMBER = "member"  # a member of the subject's project (own tenant)
    PI = "pi"  # the subject project's principal investigator
    OTHER_TENANT = "other-tenant"  # a member of a project of another organisation
    REVIEWER = "reviewer"
    ACCESS_TEAM = "access-team"
    HUB_STAFF = "hub-staff"  # staff of the subject's hub
    OTHER_HUB = "other-hub-staff"  # staff of another hub
    SITE_OPERATOR = "site-operator"
    ADMIN = "admin"
    # No person: the agent of the subject site (made here), with that site's token; and
    # another site's agent, with its own.
    SITE_AGENT = "site-agent"
    OTHER_SITE_AGENT = "other-site-agent"


# Callers that are no person: every person's route answers them as it answers nobody.
NO_PERSON = frozenset({Who.ANONYMOUS, Who.SITE_AGENT, Who.OTHER_SITE_AGENT})


DEMO_STAFF = {
    Who.REVIEWER: "rita",
    Who.ACCESS_TEAM: "eva",
    Who.HUB_STAFF: "hanna",
    Who.OTHER_HUB: "henk",
    Who.SITE_OPERATOR: "otto",
    Who.ADMIN: "admin",
}
SUBJECT_PROVINCE = "Noord-Brabant"  # served by hub Brainport, hanna's; henk's is elsewhere
OPERATED_SITE = "amsterdam"  # otto's
AI_ACT = {"risk": "minimal", "notes": "inspection of photonic chips"}


# -- the route table ---------------------------------------------------------------------------


def operations(app: FastAPI) -> dict[str, BaseRoute]:
    """Every operation the application serves, as 'METHOD /path/{template}' → its route:
    API, portal and mounted static files alike (HEAD, which Starlette adds to every GET,
    is left out)."""
    found: dict[str, BaseRoute] = {}

    def walk(routes: list[BaseRoute], prefix: str) -> None:
        for route in routes:
            # FastAPI 0.165 keeps an included router whole, behind `original_router`.
            inner = getattr(route, "original_router", None)
            if inner is not None:
                context = getattr(route, "include_context", None)
                walk(list(inner.routes), prefix + str(getattr(context, "prefix", "")))
            elif isinstance(route, Mount):
                found[f"GET {prefix}{route.path}/{{path}}"] = route
            elif isinstance(route, APIRoute | Route):
                for method in sorted((route.methods or set()) - {"HEAD"}):
                    found[f"{method} {prefix}{route.path}"] = route
            else:
                # A kind of route the matrix cannot ask yet (a websocket, ...): it is listed
                # under its kind, so that it too must get a row.
                found[f"{type(route).__name__} {prefix}{getattr(route, 'path', '')}"] = route

    walk(list(app.routes), "")
    return found


def body_type(route: BaseRoute) -> TypeAdapter[Any] | None:
    """What a route reads its JSON body into (a model, a mapping), if it reads one."""
    field = getattr(route, "body_field", None)
    if field is None:
        return None
    return TypeAdapter(field.field_info.annotation)


# -- the people and objects ------------------------------------------------------------------------


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, f"setup: {response.request.url}: {response.text}"
    return response.json() if response.content else None


@dataclass
class World:
    """One backend's subjects: made once, then asked about by every row."""

    server: LiveServer
    tag: str
    clients: dict[Who, httpx.Client] = field(default_factory=dict)
    tokens: dict[Who, str] = field(default_factory=dict)
    counter: Iterator[int] = field(default_factory=itertools.count)
    cleanup: ExitStack = field(default_factory=ExitStack)

    # -- people ----------------------------------------------------------------------------------

    def username(self, who: Who) -> str:
        return DEMO_STAFF.get(who) or f"{self.tag}-{who.value}"

    def as_(self, who: Who) -> httpx.Client:
        return self.clients[who]

    def fresh(self, what: str) -> str:
        """A name no other call has used, e.g. for a dataset or a call's code."""
        return f"{self.tag}-{what}-{next(self.counter)}"

    def connect(self, who: Who, token: str | None) -> None:
        """The role's client, carrying both the API's bearer token and the portal's
        cookie (each side ignores the other's)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        c = httpx.Client(base_url=self.server.url, headers=headers, timeout=60)
        self.cleanup.callback(c.close)
        if token:
            self.tokens[who] = token
        self.clients[who] = c
        self.restore_cookies(who)

    def restore_cookies(self, who: Who) -> None:
        """Back to just the role's sign-in cookie (a sign-in or sign-out answer changes it)."""
        jar = httpx.Cookies()
        if who in self.tokens:
            jar.set(TOKEN_COOKIE, self.tokens[who])
        self.clients[who].cookies = jar

    def new_user(self, username: str, organisation_id: int, **extra: Any) -> dict[str, Any]:
        body = {"username": username, "full_name": f"Test {username}",
                "email": f"{username}@example.org", "organisation_id": organisation_id,
                **extra}  # fmt: skip
        made: dict[str, Any] = ok(self.as_(Who.ADMIN).post(f"{API}/users", json=body), 201)
        return made

    def issue_tokens(self, usernames: dict[Who, str]) -> None:
        """API tokens for the people made here: only their owner can ask the API for one
        (or sign in through an institution), so they are issued in the store."""
        engine = make_engine(self.server.settings.database_url)
        try:
            with make_sessions(engine)() as session:
                for who, name in usernames.items():
                    user_id = session.scalar(select(UserRow.id).where(UserRow.username == name))
                    assert user_id is not None, name
                    new = issue_token(
                        session, user_id, TokenDraft(name="authz"), datetime.now(UTC), 1
                    )
                    accept_factory_terms(session, user_id)
                    self.connect(who, new.token)
                session.commit()
        finally:
            engine.dispose()

    # -- the subject's tenant ----------------------------------------------------------------------

    def build(self) -> None:
        """The tenants, their people and the objects most rows ask about."""
        self.connect(Who.ANONYMOUS, None)
        for who, username in DEMO_STAFF.items():
            self.connect(who, demo_token(username).token)
        self.organisation_id = self.new_organisation(SUBJECT_PROVINCE, "start-up")
        elsewhere = self.new_organisation("Noord-Holland", "scale-up")
        for who in (Who.PI, Who.MEMBER):
            self.new_user(self.username(who), self.organisation_id)
        self.new_user(self.username(Who.OTHER_TENANT), elsewhere)
        self.project = self.new_project(self.organisation_id, self.username(Who.PI))
        self.add_member(self.project, self.username(Who.MEMBER))
        other_project = self.new_project(elsewhere, None)
        self.add_member(other_project, self.username(Who.OTHER_TENANT))
        # A project of the subject's organisation without members, to grant datasets to.
        self.grantee = self.new_project(self.organisation_id, None)
        self.issue_tokens({w: self.username(w) for w in (Who.PI, Who.MEMBER, Who.OTHER_TENANT)})
        # Sites of their own: other tests issue the demo sites' tokens, each replacing the last.
        self.agent_site = self.new_site(Who.SITE_AGENT)
        self.new_site(Who.OTHER_SITE_AGENT)
        allocation = {"project": self.project, "track": "start-up", "gpu_hours": {"any": 50}}
        self.allocation = ok(
            self.as_(Who.ACCESS_TEAM).post(f"{API}/allocations", json=allocation), 201
        )["id"]
        # The job belongs to the PI: a plain member may look at it but not cancel it.
        job = {"project": self.project, "command": ["true"], "time_limit": "1m"}
        self.job = ok(self.as_(Who.PI).post(f"{API}/jobs", json=job), 201)["id"]
        self.dataset = self.new_dataset(with_version=True)
        call = {"code": f"{self.tag}-call", "title": "Authorisation matrix", "track": "start-up",
                "opens_at": (datetime.now(UTC) - timedelta(days=1)).isoformat()}  # fmt: skip
        self.call = ok(self.as_(Who.ACCESS_TEAM).post(f"{API}/calls", json=call), 201)["code"]

    def new_site(self, agent: Who) -> str:
        """A site registered by an admin, its agent connected as `agent` with its token."""
        body = {"name": self.fresh("site"), "city": "Delft", "province": "Zuid-Holland"}
        name = str(ok(self.as_(Who.ADMIN).post(f"{API}/sites", json=body), 201)["name"])
        issued = ok(self.as_(Who.ADMIN).post(f"{API}/sites/{name}/agent-token"), 201)
        self.connect(agent, str(issued["token"]))
        return name

    def new_organisation(self, province: str, kind: str) -> int:
        body = {"name": f"Authz {self.fresh('org')} B.V.", "kind": kind, "province": province}
        made = ok(self.as_(Who.ADMIN).post(f"{API}/organisations", json=body), 201)
        return int(made["id"])

    def new_project(self, organisation_id: int, pi: str | None) -> str:
        body = {"name": self.fresh("p"), "title": "Authorisation matrix",
                "organisation_id": organisation_id, "principal_investigator": pi}  # fmt: skip
        made = ok(self.as_(Who.ADMIN).post(f"{API}/projects", json=body), 201)
        return str(made["name"])

    def add_member(self, project: str, username: str) -> str:
        body = {"username": username, "role": "member"}
        ok(self.as_(Who.ADMIN).post(f"{API}/projects/{project}/members", json=body), 201)
        return username

    def new_member(self) -> dict[str, str]:
        """A throwaway member of the subject's project, for removing."""
        name = self.fresh("m")
        self.new_user(name, self.organisation_id)
        return {"ref": self.project, "username": self.add_member(self.project, name)}

    # -- datasets ----------------------------------------------------------------------------------

    def new_dataset(self, with_version: bool = False) -> str:
        name = self.fresh("data")
        body = {"project": self.project, "name": name, "classification": "internal"}
        ok(self.as_(Who.PI).post(f"{API}/datasets", json=body), 201)
        if with_version:
            self.new_version(name)
        return name

    def new_version(self, dataset: str) -> int:
        made = ok(
            self.as_(Who.PI).post(
                f"{API}/datasets/{self.project}/{dataset}/versions", **upload(b"authz")
            ),
            201,
        )
        return int(made["number"])

    def dataset_path(self, name: str) -> dict[str, Any]:
        return {"project": self.project, "name": name}

    def fresh_version(self) -> dict[str, Any]:
        return {
            **self.dataset_path(self.kept_dataset),
            "number": self.new_version(self.kept_dataset),
        }

    @cached_property
    def kept_dataset(self) -> str:
        """A dataset whose versions and grants are made and removed by the rows."""
        return self.new_dataset(with_version=True)

    def fresh_grant(self) -> dict[str, Any]:
        """The grantee holds a grant to `kept_dataset` (again, if a row revoked it)."""
        granted = self.as_(Who.PI).post(
            f"{API}/datasets/{self.project}/{self.kept_dataset}/grants",
            json={"project": self.grantee},
        )
        assert granted.status_code in {201, 409}, granted.text
        return {**self.dataset_path(self.kept_dataset), "grantee": self.grantee}

    # -- own things: tokens, notifications ---------------------------------------------------------

    def member_token_key(self) -> str:
        made = ok(self.as_(Who.MEMBER).post(f"{API}/tokens", json={"name": self.fresh("t")}), 201)
        return str(made["key"])

    @cached_property
    def listed_token(self) -> str:
        """A token of the member's, for lists (the rows revoke others)."""
        return self.member_token_key()

    @cached_property
    def member_notification(self) -> int:
        """A notification of the member's: a proposal of their project failed its check."""
        proposal = self.proposal("submitted")
        check = {"passed": False, "note": "the abstract is missing its data plan"}
        ok(self.as_(Who.ACCESS_TEAM).post(f"{API}/proposals/{proposal}/admin-check", json=check))
        found = ok(self.as_(Who.MEMBER).get(f"{API}/notifications", params={"limit": 200}))
        return int(next(n["id"] for n in found["items"] if n["link"] == f"/proposals/{proposal}"))

    # -- SSH keys --------------------------------------------------------------------------------

    def member_ssh_key(self) -> int:
        """A fresh public key the member registers; its id."""
        body = {"public_key": public_key(self.fresh("key"))}
        return int(ok(self.as_(Who.MEMBER).post(f"{API}/users/me/ssh-keys", json=body), 201)["id"])

    @cached_property
    def member_identity(self) -> int:
        """A federated identity of the member's (their only one: unlinking it is refused,
        409, which is past authorisation); made in the store, as a sign-in would."""
        engine = make_engine(self.server.settings.database_url)
        try:
            with make_sessions(engine)() as session:
                user_id = session.scalar(
                    select(UserRow.id).where(UserRow.username == self.username(Who.MEMBER))
                )
                row = UserIdentityRow(user_id=user_id, issuer="https://proxy.example",
                                      subject=self.fresh("sub"), linked_at=datetime.now(UTC))  # fmt: skip
                session.add(row)
                session.commit()
                return int(row.id)
        finally:
            engine.dispose()

    @cached_property
    def listed_ssh_key(self) -> int:
        """A key of the member's, for lists (the rows revoke others)."""
        return self.member_ssh_key()

    @cached_property
    def member_posix_name(self) -> str:
        """The member's Unix username at the sites, as a login node asks about it."""
        return str(ok(self.as_(Who.MEMBER).get(f"{API}/users/me/account"))["username"])

    # -- suspensions -----------------------------------------------------------------------------

    @cached_property
    def suspendable(self) -> dict[str, str]:
        """Per collection (users, projects, allocations), a throwaway of the subject's
        organisation to suspend: a person in no project, a project without members, and
        that project's allocation. No other row asks about them."""
        person = self.new_user(self.fresh("suspended"), self.organisation_id)["username"]
        project = self.new_project(self.organisation_id, None)
        body = {"project": project, "track": "start-up", "gpu_hours": {"any": 1}}
        made = ok(self.as_(Who.ACCESS_TEAM).post(f"{API}/allocations", json=body), 201)
        return {"users": person, "projects": project, "allocations": str(made["id"])}

    @contextmanager
    def lifted_after(self, collection: str) -> Iterator[None]:
        """The suspension a row puts on `suspendable[collection]` is lifted afterwards."""
        try:
            yield
        finally:
            path = f"{API}/{collection}/{self.suspendable[collection]}/suspension"
            assert ok(self.as_(Who.ADMIN).delete(path))["suspended"] is False

    # -- proposals ---------------------------------------------------------------------------------

    def proposal_body(self) -> dict[str, Any]:
        return {"call": self.call, "project": self.project, "title": self.fresh("proposal"),
                "abstract": "Defect detection on wafer images.", "sector": "semiconductors",
                "requested": {"h100": 100}, "months": 1, "ai_act": AI_ACT}  # fmt: skip

    def proposal(self, state: str, reviewer: str | None = None) -> int:
        """A fresh proposal of the subject's project, written by its PI, brought to `state`
        (draft, submitted, under-review); with `reviewer` assigned a scientific review."""
        pi, team = self.as_(Who.PI), self.as_(Who.ACCESS_TEAM)
        made = ok(pi.post(f"{API}/proposals", json=self.proposal_body()), 201)
        pid = int(made["id"])
        if state in {"submitted", "under-review"}:
            ok(pi.post(f"{API}/proposals/{pid}/submit"))
        if state == "under-review":
            ok(team.post(f"{API}/proposals/{pid}/admin-check", json={"passed": True}))
        if reviewer is not None:
            assign = {"reviewer": reviewer, "kind": "scientific"}
            ok(team.post(f"{API}/proposals/{pid}/reviewers", json=assign), 201)
        return pid

    @cached_property
    def listed_proposal(self) -> int:
        return self.proposal("draft")

    @cached_property
    def spare_reviewer(self) -> str:
        """A reviewer to assign: assigning a role's own person would change their answers."""
        name = self.fresh("reviewer")
        elsewhere = ok(self.as_(Who.ADMIN).get(f"{API}/organisations", params={"name": "TNO"}))
        org = int(elsewhere["items"][0]["id"])
        self.new_user(name, org, staff_roles=[{"role": "reviewer"}])
        return name

    # -- AI systems, models, sandboxes -------------------------------------------------------------

    @cached_property
    def ai_system(self) -> str:
        """An AI system of the subject's project, not yet classified."""
        body = {"project": self.project, "name": self.fresh("system"), "provider": "Authz B.V.",
                "intended_purpose": "Sorts wafer images by defect"}  # fmt: skip
        return str(ok(self.as_(Who.PI).post(f"{API}/ai-systems", json=body), 201)["name"])

    @cached_property
    def model(self) -> str:
        """A model of the subject's project with its first version, 1.0."""
        body = {"name": self.fresh("model"), "project": self.project, "provider": "Authz B.V.",
                "first_version": {"version": "1.0", "parameters": 1_000_000}}  # fmt: skip
        return str(ok(self.as_(Who.PI).post(f"{API}/models", json=body), 201)["name"])

    @cached_property
    def model_job(self) -> int:
        """A job of the PI's that trains `model` 1.0, so it may report its utilisation."""
        job = {"project": self.project, "command": ["true"], "time_limit": "1m",
               "model": f"{self.model}:1.0", "purpose": "fine-tuning"}  # fmt: skip
        return int(ok(self.as_(Who.PI).post(f"{API}/jobs", json=job), 201)["id"])

    @cached_property
    def sandbox(self) -> int:
        """The subject's allocation, marked as a regulatory sandbox, with its plan filed."""
        team, pi = self.as_(Who.ACCESS_TEAM), self.as_(Who.PI)
        ok(team.put(f"{API}/allocations/{self.allocation}/sandbox", json=SANDBOX))
        ok(pi.put(f"{API}/allocations/{self.allocation}/sandbox/plan", **document()))
        return int(self.allocation)

    # -- the expertise network and the knowledge base ----------------------------------------------

    @cached_property
    def expert(self) -> int:
        """An expert of the subject's hub (Brainport) with hours to spare."""
        body = {"name": self.fresh("expert"), "organisation": "Fontys Hogescholen",
                "hub": "brainport", "skills": ["mlops"], "hours_per_month": 40}  # fmt: skip
        return int(ok(self.as_(Who.HUB_STAFF).post(f"{API}/experts", json=body), 201)["id"])

    def new_expertise_request(self) -> int:
        """A request for expertise about the subject's draft proposal, by its PI."""
        body = {"skills": ["mlops"], "hours": 1, "proposal_id": self.listed_proposal}
        made = ok(self.as_(Who.PI).post(f"{API}/expertise-requests", json=body), 201)
        return int(made["id"])

    @cached_property
    def expertise_request(self) -> int:
        return self.new_expertise_request()

    @cached_property
    def assigned_request(self) -> int:
        """A request with `expert` assigned to it (by the subject's hub staff)."""
        request_id = self.new_expertise_request()
        assign = {"expert_id": self.expert, "hours": 1}
        ok(self.as_(Who.HUB_STAFF).post(
            f"{API}/expertise-requests/{request_id}/assignments", json=assign), 201)  # fmt: skip
        return request_id

    @cached_property
    def article(self) -> str:
        """A knowledge-base article written by the subject's hub staff."""
        body = {"slug": self.fresh("article"), "language": "en", "title": "Authorisation matrix",
                "body": "What each role may do."}  # fmt: skip
        return str(ok(self.as_(Who.HUB_STAFF).post(f"{API}/kb/articles", json=body), 201)["slug"])

    # -- support tickets ---------------------------------------------------------------------------

    def new_ticket(self) -> int:
        """A ticket the member opens about the subject's project: it goes to the subject's
        hub (Brainport)."""
        body = {"subject": self.fresh("ticket"), "category": "jobs", "project": self.project}
        made = ok(self.as_(Who.MEMBER).post(f"{API}/support/tickets", json=body), 201)
        return int(made["id"])

    @cached_property
    def ticket(self) -> int:
        return self.new_ticket()

    @cached_property
    def ticket_attachment(self) -> int:
        """A file the member attached to `ticket`."""
        made = ok(self.as_(Who.MEMBER).post(
            f"{API}/support/tickets/{self.ticket}/attachments", params={"name": "run.log"},
            content=b"epoch 1: loss nan\n", headers={"Content-Type": "text/plain"}), 201)  # fmt: skip
        return int(made["id"])

    # -- sign-in through an institution ------------------------------------------------------------

    @cached_property
    def provider(self) -> OidcProvider:
        """A real OpenID Connect provider on loopback, knowing the server as a client."""
        running = self.cleanup.enter_context(running_provider())
        running.register_client(
            "authz-portal", "authz-secret", f"{self.server.url}/signin/oidc/callback"
        )
        return running

    @contextmanager
    def oidc_offered(self) -> Iterator[None]:
        """The server offers sign-in through `provider` (the shared test server does not,
        otherwise)."""
        settings = self.server.settings
        before = (settings.oidc_issuer, settings.oidc_client_id, settings.oidc_client_secret,
                  settings.public_url)  # fmt: skip
        settings.oidc_issuer, settings.oidc_client_id = self.provider.issuer, "authz-portal"
        settings.oidc_client_secret, settings.public_url = "authz-secret", self.server.url
        try:
            yield
        finally:
            (settings.oidc_issuer, settings.oidc_client_id, settings.oidc_client_secret,
             settings.public_url) = before  # fmt: skip


SANDBOX = {"authority": "Autoriteit Persoonsgegevens", "member_state": "NL"}


def document() -> dict[str, Any]:
    """The keyword arguments of filing a sandbox document."""
    return {"content": b"# Sandbox plan\n\nTesting under supervision.\n",
            "headers": {"Content-Type": "text/markdown"}}  # fmt: skip


def public_key(comment: str) -> str:
    """A fresh Ed25519 public key in OpenSSH's one-line form."""
    key = Ed25519PrivateKey.generate().public_key()
    return f"{key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()} {comment}"


def upload(data: bytes) -> dict[str, Any]:
    """The keyword arguments of a dataset version's upload."""
    return {"content": data, "headers": {"X-Content-SHA256": hashlib.sha256(data).hexdigest()}}
