"""The authorisation matrix: for every route the application serves (API, portal, static
files), the answer every role gets: allowed, 401, 403 or 404, asked over real HTTP on SQLite
and PostgreSQL.

`MATRIX` is the one table of route → rule; `RULES` says what each rule answers each role.
A route the application serves without a row fails `test_every_route_has_a_row`, naming it;
so does a row whose route is gone. "Allowed" means the request got past authorisation: any
answer but 401, 403 or 404 (a 2xx, or a 409 or 422 from the rules, which are checked after
who may). Bodies are valid for their route's model, so a refusal is never a body's fault.

The subject of every request is of the subject's tenant (tests/authz_world.py): its
project, job, allocation, dataset, proposal; the member's own token, notification and SSH
key; the subject site, whose agent calls with its site token. The principle: a role that may
not know an object exists is told 404; one that can see it but may not act, 403. A site's
token is no person's: a person's route answers a site agent as it answers nobody (401), and
a site agent's route answers every person, and any other site's agent, 401.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from starlette.routing import BaseRoute

from fabriek.domain.ai_act.documentation import provider_keys
from fabriek.domain.site_state import AgentReport
from fabriek.server.app import build_app
from fabriek.services.ai_act.rules import ai_act_rules
from fabriek.settings import Settings
from tests.authz_world import (
    API,
    NO_PERSON,
    OPERATED_SITE,
    SANDBOX,
    SUBJECT_PROVINCE,
    Who,
    World,
    body_type,
    document,
    operations,
    public_key,
    upload,
)
from tests.servers import LiveServer, prepare

Answer = Literal["allow", 401, 403, 404]
ALLOW: Answer = "allow"

W = Who


def answers(others: Answer, anonymous: Answer = 401, **roles: Answer) -> dict[Who, Answer]:
    """Every role's answer: `others` unless named (by `Who` member name, lower case);
    `anonymous` for the callers that are no person (nobody, a site's agent)."""
    named = {Who[k.upper()]: v for k, v in roles.items()}
    return {w: named.get(w, anonymous if w in NO_PERSON else others) for w in Who}


A = ALLOW
# What each shared rule answers each role.
RULES: dict[str, dict[Who, Answer]] = {
    "public": answers(A, anonymous=A),
    "signed-in": answers(A),
    "admin-only": answers(403, admin=A),
    "access-team": answers(403, access_team=A, admin=A),
    "hub-staff": answers(403, hub_staff=A, other_hub=A, admin=A),
    # Within the subject's organisation or province: its hub's staff and admins.
    "own-hub": answers(403, hub_staff=A, admin=A),
    "site-operator": answers(403, site_operator=A, admin=A),
    # One's own token, notification or SSH key: nobody else learns it exists, admins included.
    "self": answers(404, member=A),
    # A certificate for the login nodes: whoever may log in now, a member of an active
    # project (staff of no project are refused, 403).
    "may-log-in": answers(403, member=A, pi=A, other_tenant=A),
    # What a site's agent calls with its site token: that site's agent only; a person's
    # token, or another site's, is no credential here.
    "site-agent": answers(401, site_agent=A),
    # A person's record: themselves, the staff of the hub that serves their organisation
    # or projects (who add people to projects; personal data goes no wider), admins.
    "person": answers(404, member=A, hub_staff=A, admin=A),
    # The project and what runs in it: its members, its hub, admins (visible_projects).
    "project-viewer": answers(404, member=A, pi=A, hub_staff=A, admin=A),
    # ... and its budgets: the access team too (visible_accounts).
    "project-accounts": answers(404, member=A, pi=A, hub_staff=A, access_team=A, admin=A),
    # Writing into the project: its members only; those who see it are told 403.
    "project-members": answers(404, member=A, pi=A, hub_staff=403, admin=403),
    "project-members-or-admin": answers(404, member=A, pi=A, hub_staff=403, admin=A),
    "pi-hub-or-admin": answers(404, member=403, pi=A, hub_staff=A, admin=A),
    "pi-only": answers(404, member=403, pi=A, hub_staff=403, access_team=403, admin=403),
    # Marking an allocation as a regulatory sandbox; filing its plan and exit report.
    "sandbox-marker": answers(404, member=403, pi=403, hub_staff=403, access_team=A, admin=A),
    "sandbox-filer": answers(404, member=A, pi=A, hub_staff=403, access_team=A, admin=A),
    # The subject proposal is a draft: the applicants' own (and their hub's, who see the
    # project); the access team sees a proposal once it is submitted.
    "proposal-viewer": answers(404, member=A, pi=A, hub_staff=A, admin=A),
    "proposal-members": answers(404, member=A, pi=A, hub_staff=403, access_team=403, admin=403),
    # The PI wrote the subject proposal; a plain member may not withdraw it.
    "proposal-author-or-pi": answers(
        404, member=403, pi=A, hub_staff=403, access_team=403, admin=403
    ),
    # Checks, reviewer assignments, decisions: the access team; the applicant's hub on a
    # hub-run track (start-up, the subject's); admins.
    "runs-the-call": answers(404, member=403, pi=403, hub_staff=A, access_team=A, admin=A),
    "assigned-reviewer": answers(
        404, member=403, pi=403, reviewer=A, hub_staff=403, access_team=403, admin=403
    ),
    # Datasets are seen by the owning project's members (and granted projects'); admins
    # see the terms but read no data without a grant. Hub staff do not see them.
    "dataset-terms": answers(404, member=A, pi=A, admin=A),
    "dataset-data": answers(404, member=A, pi=A, admin=403),
    "dataset-manager": answers(404, member=403, pi=A, admin=A),
    # A project's model endpoints: its PI and admins manage them; its other members and its
    # hub's staff see them (project-viewer) and are told 403.
    "endpoint-manager": answers(404, member=403, pi=A, hub_staff=403, admin=A),
    "organisation-key": answers(403, pi=A, admin=A),
    # The portal's decision queue: whoever runs some call (the access team, admins, hub
    # staff for their regional track).
    "call-runners": answers(403, access_team=A, hub_staff=A, other_hub=A, admin=A),
    # Assigning experts to the subject's request for expertise and logging their hours: the
    # staff of the requester's hub and admins; the applicants who see the request, 403.
    "request-hub": answers(404, member=403, pi=403, hub_staff=A, admin=A),
    # The subject's support ticket (the member's, about the subject's project, at its hub):
    # its people, the hub's staff and the central desk (access team, admins) see it and
    # write on it; only the staff handle it (triage, status, handover).
    "ticket-viewer": answers(404, member=A, pi=A, hub_staff=A, access_team=A, admin=A),
    "ticket-handlers": answers(404, member=403, pi=403, hub_staff=A, access_team=A, admin=A),
    # The subject hub's monthly support report: its staff and the central desk.
    "desk-report": answers(403, hub_staff=A, access_team=A, admin=A),
    # A partner factory's routes: its account only (tests/test_partner_factories.py asks
    # them with one); this world trusts no partner, so every person is told 404.
    "partner-factory": answers(404),
}

Payload = dict[str, Any]  # keyword arguments of httpx.Client.request: json, content, data, ...


@dataclass(frozen=True)
class Listing:
    """A list route's tenant isolation: the subject is listed exactly to the roles `rule`
    allows (among those the route answers at all)."""

    rule: str
    subject: Callable[[World], Any]  # as its items carry it in `key`
    query: Callable[[World], dict[str, Any]] = lambda w: {"project": w.project}
    key: str = "id"


@dataclass(frozen=True)
class Row:
    """How to ask a route about its subject, and which rule answers."""

    rule: str
    # The path's parameters: objects of the subject's tenant.
    path: Callable[[World], dict[str, Any]] | None = None
    # The request's body and query, valid and fresh for each caller.
    send: Callable[[World, Who], Payload] | None = None
    # Make `path` again for every caller: the call may destroy its subject.
    fresh: bool = False
    # Conditions the server must be in while the row is asked.
    around: Callable[[World], AbstractContextManager[None]] | None = None
    # For a list: who finds the subject in it.
    listed: Listing | None = None


def js(make: Callable[[World, Who], Any]) -> Callable[[World, Who], Payload]:
    return lambda w, who: {"json": make(w, who)}


def form(make: Callable[[World, Who], dict[str, str]]) -> Callable[[World, Who], Payload]:
    return lambda w, who: {"data": make(w, who)}


# -- what the rows send: valid, and fresh names for every call ---------------------------------


def site(w: World, who: Who) -> dict[str, Any]:
    return {"name": w.fresh("site"), "city": "Delft", "province": "Zuid-Holland"}


def organisation(w: World, who: Who) -> dict[str, Any]:
    return {"name": f"Authz {w.fresh('org')} B.V.", "kind": "sme", "province": SUBJECT_PROVINCE}


def person(w: World, who: Who) -> dict[str, Any]:
    name = w.fresh("u")
    return {"username": name, "full_name": "New Person", "email": f"{name}@example.org",
            "organisation_id": w.organisation_id}  # fmt: skip


def project(w: World, who: Who) -> dict[str, Any]:
    return {"name": w.fresh("p"), "title": "New", "organisation_id": w.organisation_id}


def membership(w: World, who: Who) -> dict[str, Any]:
    """A person of the subject's organisation, made for this call, to add."""
    return {"username": w.new_user(w.fresh("m"), w.organisation_id)["username"]}


def job(w: World, who: Who) -> dict[str, Any]:
    return {"project": w.project, "command": ["true"], "time_limit": "1m", "name": w.fresh("j")}


def allocation(w: World, who: Who) -> dict[str, Any]:
    return {"project": w.project, "track": "start-up", "gpu_hours": {"any": 1}}


def call(w: World, who: Who) -> dict[str, Any]:
    opens = datetime.now(UTC).isoformat()
    return {"code": w.fresh("call"), "title": "A call", "track": "fast-lane", "opens_at": opens}


def settings_as_they_are(w: World, who: Who) -> dict[str, Any]:
    """The caller's notification settings, sent back unchanged."""
    found = w.as_(who).get(f"{API}/notifications/settings")
    if found.status_code != 200:
        return {"delivery": "digest"}
    return {"delivery": found.json()["delivery"], "muted": found.json()["muted"]}


def dataset(w: World, who: Who) -> dict[str, Any]:
    return {"project": w.project, "name": w.fresh("data")}


def endpoint(w: World, who: Who) -> dict[str, Any]:
    return {"name": w.fresh("ep").lower(), "model": w.dataset, "gpus": 0, "min_replicas": 0}


def new_endpoint(w: World) -> dict[str, Any]:
    """An endpoint of the subject project (no replicas: min 0), made by its PI."""
    made = w.as_(Who.PI).post(f"{API}/projects/{w.project}/endpoints", json=endpoint(w, Who.PI))
    assert made.status_code == 201, made.text
    return {"project": w.project, "name": made.json()["name"]}


def new_endpoint_key(w: World) -> dict[str, Any]:
    """An endpoint key of the subject project, made by its PI."""
    made = w.as_(Who.PI).post(
        f"{API}/projects/{w.project}/endpoint-keys", json={"name": w.fresh("key")}
    )
    assert made.status_code == 201, made.text
    return {"project": w.project, "key": str(made.json()["id"])}


def ai_system(w: World, who: Who) -> dict[str, Any]:
    return {"project": w.project, "name": w.fresh("system"), "provider": "Authz B.V.",
            "intended_purpose": "Sorts wafer images by defect"}  # fmt: skip


def model(w: World, who: Who) -> dict[str, Any]:
    return {"name": w.fresh("model"), "project": w.project, "provider": "Authz B.V."}


def documentation(w: World, who: Who) -> dict[str, Any]:
    return {provider_keys(ai_act_rules())[0]: "Written for the matrix."}


def expert(w: World, who: Who) -> dict[str, Any]:
    return {"name": w.fresh("expert"), "organisation": "Fontys Hogescholen", "hub": "brainport",
            "skills": ["mlops"], "hours_per_month": 8}  # fmt: skip


def expertise_request(w: World, who: Who) -> dict[str, Any]:
    return {"skills": ["mlops"], "proposal_id": w.listed_proposal}


def article(w: World, who: Who) -> dict[str, Any]:
    return {"slug": w.fresh("article"), "language": "nl", "title": "Matrix",
            "body": "Wie mag wat."}  # fmt: skip


def ticket(w: World, who: Who) -> dict[str, Any]:
    return {"subject": w.fresh("ticket"), "category": "onboarding"}


def attachment(name: str) -> Payload:
    """A log file attached to a ticket."""
    return {"content": b"epoch 1: loss nan\n", "params": {"name": f"{name}.log"},
            "headers": {"Content-Type": "text/plain"}}  # fmt: skip


def inbound_mail() -> Payload:
    """An e-mail as the support mailbox pipes it in."""
    text = "From: someone@example.org\r\nTo: support@localhost\r\nSubject: help\r\n\r\nHi\r\n"
    return {"content": text.encode(), "headers": {"Content-Type": "message/rfc822"}}


def job_form(w: World, who: Who) -> dict[str, str]:
    """The portal's job form, filled in."""
    return {"project": w.project, "command": "true", "time_limit": "1m", "name": w.fresh("j")}


def proposal_form(w: World, who: Who) -> dict[str, str]:
    """The portal's proposal form, filled in (saved as a draft)."""
    return {"project": w.project, "title": w.fresh("proposal"), "sector": "semiconductors",
            "abstract": "Defect detection on wafer images.", "gpu_h100": "100", "months": "1",
            "ai_risk": "minimal", "residency": "any", "action": "draft"}  # fmt: skip


def review_form(w: World, who: Who) -> dict[str, str]:
    """The portal's review form: no conflict of interest, a score."""
    return {"kind": "scientific", "coi": "none", "score": "4", "comment": "sound"}


def reviewer_form(w: World, who: Who) -> dict[str, str]:
    """The decision page's form asking someone for a scientific review."""
    return {"kind": "scientific", "reviewer_scientific": w.spare_reviewer}


def ai_system_form(w: World, who: Who) -> dict[str, str]:
    """The portal's form registering an AI system."""
    return {"project": w.project, "name": w.fresh("system"), "provider": "Authz B.V.",
            "intended_purpose": "Sorts wafer images by defect", "role": "provider"}  # fmt: skip


def ticket_form(w: World, who: Who) -> dict[str, str]:
    """The portal's ticket form, sent after the check for answers."""
    return {"category": "onboarding", "subject": w.fresh("ticket"), "action": "submit"}


def site_terms(w: World, who: Who) -> dict[str, Any]:
    """An editorial version of the operated site's terms: it asks nobody to accept anything."""
    return {"scope": OPERATED_SITE, "title": w.fresh("terms"), "body": "House rules.",
            "requires_acceptance": False}  # fmt: skip


def ssh_key(w: World, who: Who) -> dict[str, str]:
    return {"public_key": public_key(w.fresh("key"))}


def suspension(w: World, who: Who) -> dict[str, str]:
    return {"reason": "the matrix asks who may"}


def agent_report(w: World, who: Who) -> dict[str, Any]:
    """What an agent reports: applied nothing, found nothing changed."""
    return AgentReport(generation=w.fresh("generation")).to_json()


def member_token(w: World, who: Who) -> dict[str, str]:
    """The portal's sign-in form, filled in with the member's token."""
    return {"token": w.tokens[W.MEMBER], "next": "/"}


# -- the subjects: objects of the subject's tenant -----------------------------------------------

PROJECT = lambda w: {"ref": w.project}  # noqa: E731
JOB = lambda w: {"job_id": w.job}  # noqa: E731
ALLOCATION = lambda w: {"allocation_id": w.allocation}  # noqa: E731
DATASET = lambda w: w.dataset_path(w.dataset)  # noqa: E731
SYSTEM = lambda w: {"ref": w.ai_system}  # noqa: E731
MODEL = lambda w: {"name": w.model}  # noqa: E731
MODEL_VERSION = lambda w: {"name": w.model, "version": "1.0"}  # noqa: E731
SANDBOX_OF = lambda w: {"allocation_id": w.sandbox}  # noqa: E731
SANDBOX_PLAN = lambda w: {"allocation_id": w.sandbox, "kind": "plan"}  # noqa: E731
OWN_TOKEN = lambda w: {"key": w.member_token_key()}  # noqa: E731
OWN_NOTIFICATION = lambda w: {"notification_id": w.member_notification}  # noqa: E731
ORGANISATION = lambda w: {"org_id": w.organisation_id}  # noqa: E731
SITE = lambda w: {"ref": OPERATED_SITE}  # noqa: E731
# The operated site, where a route names it {site}.
OPERATED = lambda w: {"site": OPERATED_SITE}  # noqa: E731
# The subject site, whose agent is `Who.SITE_AGENT`.
AGENT_SITE = lambda w: {"site": w.agent_site}  # noqa: E731
# ... and the member, as its login nodes name them.
AGENT_SITE_PERSON = lambda w: {"site": w.agent_site, "username": w.member_posix_name}  # noqa: E731
OWN_SSH_KEY = lambda w: {"key_id": w.member_ssh_key()}  # noqa: E731
OWN_IDENTITY = lambda w: {"identity_id": w.member_identity}  # noqa: E731
EXPERT = lambda w: {"expert_id": w.expert}  # noqa: E731
REQUEST = lambda w: {"request_id": w.expertise_request}  # noqa: E731
TICKET = lambda w: {"ticket_id": w.ticket}  # noqa: E731
# The demo factory's terms of use, version 1.
FACTORY_TERMS_SCOPE = lambda w: {"scope": "factory"}  # noqa: E731
FACTORY_TERMS = lambda w: {"scope": "factory", "version": 1}  # noqa: E731
NOTHING: Callable[[World], dict[str, Any]] = lambda w: {}  # noqa: E731


def suspend(collection: str) -> Row:
    """Suspending the throwaway of `collection` (users, projects, allocations): admins
    only; lifted again once the row is asked."""
    return Row(
        "admin-only",
        path=lambda w: {"ref": w.suspendable[collection]},
        send=js(suspension),
        around=lambda w: w.lifted_after(collection),
    )


def lift(collection: str) -> Row:
    """Lifting the suspension of the throwaway of `collection`: admins only."""
    return Row("admin-only", path=lambda w: {"ref": w.suspendable[collection]})


def proposal(state: str, reviewer: str | None = None) -> Callable[[World], dict[str, Any]]:
    """A fresh proposal of the subject's project for the route, brought to `state`."""
    return lambda w: {"proposal_id": w.proposal(state, reviewer)}


# Every route the application serves → its rule and how to ask it. ONE table: a new route
# gets its row here.
MATRIX: dict[str, Row] = {
    # -- health, documentation, static files
    "GET /healthz": Row("public"),
    "GET /readyz": Row("public"),
    "GET /metrics": Row("signed-in"),
    "GET /openapi.json": Row("public"),
    "GET /docs": Row("public"),
    "GET /docs/oauth2-redirect": Row("public"),
    "GET /static/{path}": Row("public", path=lambda w: {"path": "style.css"}),
    # -- the caller
    "GET /api/v1/whoami": Row("signed-in"),
    # Which server of the control plane leads the dispatcher's and housekeeping's roles.
    "GET /api/v1/control-plane": Row("admin-only"),
    # The image registry's token service: anyone signed in gets a token, granting only what
    # their projects allow (tests/test_registry.py asks the registry itself).
    "GET /api/v1/registry/token": Row("signed-in"),
    "GET /api/v1/tokens": Row(
        "signed-in", listed=Listing("self", lambda w: w.listed_token, NOTHING, "key")
    ),
    "POST /api/v1/tokens": Row("signed-in", send=js(lambda w, who: {"name": w.fresh("t")})),
    "DELETE /api/v1/tokens/{key}": Row("self", path=OWN_TOKEN),
    "GET /api/v1/identities": Row("signed-in"),
    "DELETE /api/v1/identities/{identity_id}": Row("self", path=OWN_IDENTITY),
    "GET /api/v1/notifications": Row(
        "signed-in", listed=Listing("self", lambda w: w.member_notification, NOTHING)
    ),
    "GET /api/v1/notifications/settings": Row("signed-in"),
    "PUT /api/v1/notifications/settings": Row("signed-in", send=js(settings_as_they_are)),
    "POST /api/v1/notifications/read-all": Row("signed-in"),
    "POST /api/v1/notifications/{notification_id}/read": Row("self", path=OWN_NOTIFICATION),
    # -- terms of use (a site's, editorial: the shared server's people need accept nothing new)
    "GET /api/v1/terms": Row("signed-in"),
    "POST /api/v1/terms": Row("site-operator", send=js(site_terms)),
    "GET /api/v1/terms/{scope}": Row("signed-in", path=FACTORY_TERMS_SCOPE),
    "GET /api/v1/terms/{scope}/{version}": Row("signed-in", path=FACTORY_TERMS),
    "POST /api/v1/terms/{scope}/{version}/accept": Row("signed-in", path=FACTORY_TERMS),
    "GET /api/v1/users/me/terms": Row("signed-in"),
    # -- the caller's POSIX account and SSH access at the sites
    "GET /api/v1/users/me/account": Row("signed-in"),
    "GET /api/v1/users/me/ssh-keys": Row(
        "signed-in", listed=Listing("self", lambda w: w.listed_ssh_key, NOTHING)
    ),
    "POST /api/v1/users/me/ssh-keys": Row("signed-in", send=js(ssh_key)),
    "DELETE /api/v1/users/me/ssh-keys/{key_id}": Row("self", path=OWN_SSH_KEY),
    "POST /api/v1/users/me/ssh-certificates": Row("may-log-in", send=js(ssh_key)),
    "GET /api/v1/users/me/ssh-ca": Row("signed-in"),
    # -- reference data, sites, organisations, people
    "GET /api/v1/reference/gpu-types": Row("signed-in"),
    "GET /api/v1/reference/provinces": Row("signed-in"),
    "GET /api/v1/reference/hubs": Row("signed-in"),
    "GET /api/v1/sites": Row("signed-in"),
    "POST /api/v1/sites": Row("admin-only", send=js(site)),
    "GET /api/v1/sites/{ref}": Row("signed-in", path=SITE),
    # The city as it is: other tests read the site.
    "PATCH /api/v1/sites/{ref}": Row(
        "site-operator", path=SITE, send=js(lambda w, who: {"city": "Amsterdam"})
    ),
    # Each issue replaces the site's token: other tests issue their own right before use.
    "POST /api/v1/sites/{ref}/agent-token": Row("site-operator", path=SITE),
    "GET /api/v1/sites/{site}/agent": Row("site-operator", path=OPERATED),
    "GET /api/v1/sites/{site}/harvest": Row("site-operator", path=OPERATED),
    # The demo's engines read no Slurm accounting: a 422 (or a 503 without a dispatcher),
    # past authorisation.
    "POST /api/v1/sites/{site}/harvest": Row("site-operator", path=OPERATED),
    # -- a site's agent, with its site token
    "GET /api/v1/sites/{site}/agent/whoami": Row("site-agent", path=AGENT_SITE),
    "GET /api/v1/sites/{site}/agent/desired-state": Row("site-agent", path=AGENT_SITE),
    "POST /api/v1/sites/{site}/agent/reports": Row(
        "site-agent", path=AGENT_SITE, send=js(agent_report)
    ),
    # An empty batch: no job ran there.
    "POST /api/v1/sites/{site}/agent/accounting": Row(
        "site-agent", path=AGENT_SITE, send=js(lambda w, who: {"sacct": ""})
    ),
    "GET /api/v1/sites/{site}/agent/principals/{username}": Row(
        "site-agent", path=AGENT_SITE_PERSON
    ),
    "GET /api/v1/sites/{site}/agent/ssh-keys/{username}": Row("site-agent", path=AGENT_SITE_PERSON),
    "GET /api/v1/organisations": Row("signed-in"),
    "POST /api/v1/organisations": Row("own-hub", send=js(organisation)),
    "GET /api/v1/organisations/{org_id}": Row("signed-in", path=ORGANISATION),
    "PATCH /api/v1/organisations/{org_id}": Row(
        "own-hub", path=ORGANISATION, send=js(lambda w, who: {"domain": f"{w.tag}.example.org"})
    ),
    "GET /api/v1/users": Row("hub-staff"),
    "POST /api/v1/users": Row("own-hub", send=js(person)),
    "GET /api/v1/users/{ref}": Row("person", path=lambda w: {"ref": w.username(W.MEMBER)}),
    # Suspending throwaways of the subject's organisation, lifted again after the row;
    # lifting what is not suspended answers the thing as it is, past authorisation.
    "PUT /api/v1/users/{ref}/suspension": suspend("users"),
    "DELETE /api/v1/users/{ref}/suspension": lift("users"),
    "PUT /api/v1/projects/{ref}/suspension": suspend("projects"),
    "DELETE /api/v1/projects/{ref}/suspension": lift("projects"),
    "PUT /api/v1/allocations/{ref}/suspension": suspend("allocations"),
    "DELETE /api/v1/allocations/{ref}/suspension": lift("allocations"),
    # -- projects and members
    "GET /api/v1/projects": Row(
        "signed-in",
        listed=Listing(
            "project-viewer", lambda w: w.project, lambda w: {"name": w.project}, "name"
        ),
    ),
    "POST /api/v1/projects": Row("own-hub", send=js(project)),
    "GET /api/v1/projects/{ref}": Row("project-viewer", path=PROJECT),
    "GET /api/v1/projects/{ref}/members": Row("project-viewer", path=PROJECT),
    "GET /api/v1/projects/{ref}/images": Row("project-viewer", path=PROJECT),
    "POST /api/v1/projects/{ref}/members": Row(
        "pi-hub-or-admin", path=PROJECT, send=js(membership)
    ),
    "DELETE /api/v1/projects/{ref}/members/{username}": Row(
        "pi-hub-or-admin", path=lambda w: w.new_member(), fresh=True
    ),
    # -- jobs
    "GET /api/v1/jobs": Row("signed-in", listed=Listing("project-viewer", lambda w: w.job)),
    "POST /api/v1/jobs": Row("project-members", send=js(job)),
    "GET /api/v1/partner": Row("partner-factory"),
    "GET /api/v1/partner/jobs": Row("partner-factory"),
    "POST /api/v1/partner/jobs": Row("partner-factory", send=js(job)),
    "GET /api/v1/jobs/{job_id}": Row("project-viewer", path=JOB),
    "GET /api/v1/jobs/{job_id}/events": Row("project-viewer", path=JOB),
    "GET /api/v1/jobs/{job_id}/logs": Row("project-viewer", path=JOB),
    # Cancelling a job that has ended answers the job as it is: the one job serves all.
    "POST /api/v1/jobs/{job_id}/cancel": Row("pi-hub-or-admin", path=JOB),
    # -- allocations, sandboxes, usage
    "GET /api/v1/allocations": Row(
        "signed-in", listed=Listing("project-accounts", lambda w: w.allocation)
    ),
    "POST /api/v1/allocations": Row("access-team", send=js(allocation)),
    "GET /api/v1/allocations/{allocation_id}": Row("project-accounts", path=ALLOCATION),
    "GET /api/v1/allocations/{allocation_id}/charges": Row("project-accounts", path=ALLOCATION),
    # Filed once; filing again is a 409 from the rules, past authorisation.
    "POST /api/v1/allocations/{allocation_id}/final-report": Row(
        "pi-only", path=ALLOCATION, send=js(lambda w, who: {"report": "All went to plan."})
    ),
    "PUT /api/v1/allocations/{allocation_id}/sandbox": Row(
        "sandbox-marker", path=SANDBOX_OF, send=js(lambda w, who: SANDBOX)
    ),
    "GET /api/v1/allocations/{allocation_id}/sandbox": Row("project-accounts", path=SANDBOX_OF),
    "PUT /api/v1/allocations/{allocation_id}/sandbox/{kind}": Row(
        "sandbox-filer", path=SANDBOX_PLAN, send=lambda w, who: document()
    ),
    "GET /api/v1/allocations/{allocation_id}/sandbox/{kind}": Row(
        "project-accounts", path=SANDBOX_PLAN
    ),
    "GET /api/v1/usage": Row("signed-in"),
    # -- access: tracks, calls, proposals, reviews
    "GET /api/v1/tracks": Row("signed-in"),
    "GET /api/v1/calls": Row("signed-in"),
    "POST /api/v1/calls": Row("access-team", send=js(call)),
    "GET /api/v1/calls/{ref}": Row("signed-in", path=lambda w: {"ref": w.call}),
    "GET /api/v1/proposals": Row(
        "signed-in", listed=Listing("proposal-viewer", lambda w: w.listed_proposal)
    ),
    "POST /api/v1/proposals": Row("project-members", send=js(lambda w, who: w.proposal_body())),
    "GET /api/v1/proposals/{proposal_id}": Row("proposal-viewer", path=proposal("draft")),
    # After the first allowed caller, the state no longer allows the step: a 409 from the
    # rules, past authorisation.
    "POST /api/v1/proposals/{proposal_id}/submit": Row("proposal-members", path=proposal("draft")),
    "POST /api/v1/proposals/{proposal_id}/withdraw": Row(
        "proposal-author-or-pi", path=proposal("draft")
    ),
    "POST /api/v1/proposals/{proposal_id}/admin-check": Row(
        "runs-the-call", path=proposal("submitted"), send=js(lambda w, who: {"passed": True})
    ),
    "POST /api/v1/proposals/{proposal_id}/reviewers": Row(
        "runs-the-call",
        path=proposal("under-review"),
        send=js(lambda w, who: {"reviewer": w.spare_reviewer, "kind": "scientific"}),
    ),
    "POST /api/v1/proposals/{proposal_id}/reviews": Row(
        "assigned-reviewer",
        path=proposal("under-review", reviewer="rita"),
        send=js(lambda w, who: {"kind": "scientific", "score": 4, "comment": "sound"}),
    ),
    "POST /api/v1/proposals/{proposal_id}/decision": Row(
        "runs-the-call",
        path=proposal("under-review"),
        send=js(lambda w, who: {"decision": "reject", "reason": "the budget is spent"}),
    ),
    "GET /api/v1/reviews": Row("signed-in"),
    # -- audit trail
    "GET /api/v1/audit": Row("signed-in"),
    "GET /api/v1/audit/head": Row("admin-only"),
    "GET /api/v1/audit/verify": Row("admin-only"),
    # -- datasets and organisation keys
    "GET /api/v1/datasets": Row(
        "signed-in", listed=Listing("dataset-terms", lambda w: w.dataset, key="name")
    ),
    "POST /api/v1/datasets": Row("project-members", send=js(dataset)),
    "GET /api/v1/datasets/{project}/{name}": Row("dataset-terms", path=DATASET),
    # -- model endpoints
    "GET /api/v1/projects/{project}/endpoints": Row(
        "project-viewer", path=lambda w: {"project": w.project}
    ),
    "POST /api/v1/projects/{project}/endpoints": Row(
        "endpoint-manager", path=lambda w: {"project": w.project}, send=js(endpoint)
    ),
    "GET /api/v1/projects/{project}/endpoints/{name}": Row("project-viewer", path=new_endpoint),
    "PATCH /api/v1/projects/{project}/endpoints/{name}": Row(
        "endpoint-manager", path=new_endpoint, send=js(lambda w, who: {"max_replicas": 2})
    ),
    "DELETE /api/v1/projects/{project}/endpoints/{name}": Row(
        "endpoint-manager", path=new_endpoint, fresh=True
    ),
    # -- endpoint keys and usage (the gateway under /v1 answers in OpenAI's shape: asked
    # with a person's own token, /v1/models lists what they may call)
    "GET /api/v1/projects/{project}/endpoint-keys": Row(
        "project-members-or-admin", path=lambda w: {"project": w.project}
    ),
    "POST /api/v1/projects/{project}/endpoint-keys": Row(
        "project-members-or-admin",
        path=lambda w: {"project": w.project},
        send=js(lambda w, who: {"name": w.fresh("key")}),
    ),
    "DELETE /api/v1/projects/{project}/endpoint-keys/{key}": Row(
        "project-members-or-admin", path=new_endpoint_key, fresh=True
    ),
    "GET /api/v1/projects/{project}/endpoint-usage": Row(
        "project-viewer", path=lambda w: {"project": w.project}
    ),
    "GET /api/v1/projects/{project}/endpoint-energy": Row(
        "project-viewer", path=lambda w: {"project": w.project}
    ),
    "GET /v1/{path}": Row("signed-in", path=lambda w: {"path": "models"}),
    "DELETE /api/v1/datasets/{project}/{name}": Row(
        "dataset-manager", path=lambda w: w.dataset_path(w.new_dataset()), fresh=True
    ),
    "POST /api/v1/datasets/{project}/{name}/versions": Row(
        "dataset-data", path=DATASET, send=lambda w, who: upload(w.fresh("v").encode())
    ),
    "GET /api/v1/datasets/{project}/{name}/content": Row("dataset-data", path=DATASET),
    "DELETE /api/v1/datasets/{project}/{name}/versions/{number}": Row(
        "dataset-manager", path=lambda w: w.fresh_version(), fresh=True
    ),
    # Granting again is a 409, past authorisation.
    "POST /api/v1/datasets/{project}/{name}/grants": Row(
        "dataset-manager",
        path=lambda w: w.dataset_path(w.kept_dataset),
        send=js(lambda w, who: {"project": w.grantee}),
    ),
    "DELETE /api/v1/datasets/{project}/{name}/grants/{grantee}": Row(
        "dataset-manager", path=lambda w: w.fresh_grant(), fresh=True
    ),
    "GET /api/v1/organisation-keys": Row(
        "signed-in",
        listed=Listing("organisation-key", lambda w: w.organisation_id, NOTHING, "organisation_id"),
    ),
    "POST /api/v1/organisation-keys/{organisation_id}/rotate": Row(
        "organisation-key", path=lambda w: {"organisation_id": w.organisation_id}
    ),
    # -- AI systems and their risk classification under the AI Act
    "GET /api/v1/ai-act/questionnaire": Row("signed-in"),
    "GET /api/v1/ai-systems": Row(
        "signed-in", listed=Listing("project-viewer", lambda w: w.ai_system, key="name")
    ),
    "POST /api/v1/ai-systems": Row("project-members-or-admin", send=js(ai_system)),
    "GET /api/v1/ai-systems/{ref}": Row("project-viewer", path=SYSTEM),
    "GET /api/v1/ai-systems/{ref}/classification": Row("project-viewer", path=SYSTEM),
    "POST /api/v1/ai-systems/{ref}/classification/answers": Row(
        "project-members-or-admin",
        path=SYSTEM,
        send=js(lambda w, who: {"answers": {"ai_system": True}}),
    ),
    # Unfinished: a 409 from the rules, past authorisation.
    "GET /api/v1/ai-systems/{ref}/classification/result": Row("project-viewer", path=SYSTEM),
    "GET /api/v1/ai-systems/{ref}/classifications": Row("project-viewer", path=SYSTEM),
    "POST /api/v1/ai-systems/{ref}/classifications": Row("project-members-or-admin", path=SYSTEM),
    # -- AI models: registry, ledger, documentation
    "GET /api/v1/models": Row(
        "signed-in", listed=Listing("project-viewer", lambda w: w.model, key="name")
    ),
    "POST /api/v1/models": Row("project-members-or-admin", send=js(model)),
    "GET /api/v1/models/rules": Row("signed-in"),
    "GET /api/v1/models/projection": Row(
        "project-accounts", send=lambda w, who: {"params": {"allocation": w.allocation}}
    ),
    "POST /api/v1/models/reports": Row(
        "project-members-or-admin", send=js(lambda w, who: {"job_id": w.model_job, "mfu": 0.4})
    ),
    "GET /api/v1/models/{name}": Row("project-viewer", path=MODEL),
    "POST /api/v1/models/{name}/versions": Row(
        "project-members-or-admin", path=MODEL, send=js(lambda w, who: {"version": w.fresh("v")})
    ),
    "POST /api/v1/models/{name}/versions/{version}/bases": Row(
        "project-members-or-admin",
        path=MODEL_VERSION,
        send=js(lambda w, who: {"external": w.fresh("base"), "training_flop": 1e20}),
    ),
    "GET /api/v1/models/{name}/versions/{version}/ledger": Row(
        "project-viewer", path=MODEL_VERSION
    ),
    "PUT /api/v1/models/{name}/versions/{version}/documentation": Row(
        "project-members-or-admin", path=MODEL_VERSION, send=js(documentation)
    ),
    "GET /api/v1/models/{name}/versions/{version}/documentation": Row(
        "project-viewer", path=MODEL_VERSION
    ),
    # -- the expertise network
    "GET /api/v1/skills": Row("signed-in"),
    "GET /api/v1/experts": Row(
        "signed-in", listed=Listing("signed-in", lambda w: w.expert, NOTHING)
    ),
    "POST /api/v1/experts": Row("own-hub", send=js(expert)),
    "GET /api/v1/experts/{expert_id}": Row("signed-in", path=EXPERT),
    "PATCH /api/v1/experts/{expert_id}": Row(
        "own-hub", path=EXPERT, send=js(lambda w, who: {"hours_per_month": 40})
    ),
    "GET /api/v1/expertise-requests": Row(
        "signed-in", listed=Listing("proposal-viewer", lambda w: w.expertise_request, NOTHING)
    ),
    # About the subject's draft proposal: whoever sees its project may ask.
    "POST /api/v1/expertise-requests": Row("proposal-viewer", send=js(expertise_request)),
    "GET /api/v1/expertise-requests/{request_id}": Row("proposal-viewer", path=REQUEST),
    "GET /api/v1/expertise-requests/{request_id}/matches": Row("proposal-viewer", path=REQUEST),
    # Assigned by the first allowed caller; again is a 409 from the rules, past authorisation.
    "POST /api/v1/expertise-requests/{request_id}/assignments": Row(
        "request-hub", path=REQUEST, send=js(lambda w, who: {"expert_id": w.expert, "hours": 1})
    ),
    "POST /api/v1/expertise-requests/{request_id}/consultations": Row(
        "request-hub",
        path=lambda w: {"request_id": w.assigned_request},
        send=js(lambda w, who: {"hours": 0.5}),
    ),
    # -- the knowledge base
    "GET /api/v1/kb/search": Row("signed-in", send=lambda w, who: {"params": {"q": "budget"}}),
    "POST /api/v1/kb/suggestions": Row("signed-in", send=js(lambda w, who: {"text": "budget"})),
    "GET /api/v1/kb/articles": Row("signed-in"),
    "POST /api/v1/kb/articles": Row("hub-staff", send=js(article)),
    "GET /api/v1/kb/articles/{slug}": Row("signed-in", path=lambda w: {"slug": w.article}),
    "PATCH /api/v1/kb/articles/{slug}": Row(
        "hub-staff",
        path=lambda w: {"slug": w.article},
        send=js(lambda w, who: {"links": ["docs/access.md"]}),
    ),
    # -- the support centre
    "GET /api/v1/support/categories": Row("signed-in"),
    "GET /api/v1/support/tickets": Row(
        "signed-in", listed=Listing("ticket-viewer", lambda w: w.ticket, NOTHING)
    ),
    "POST /api/v1/support/tickets": Row("signed-in", send=js(ticket)),
    "GET /api/v1/support/tickets/{ticket_id}": Row("ticket-viewer", path=TICKET),
    "PATCH /api/v1/support/tickets/{ticket_id}": Row(
        "ticket-handlers", path=TICKET, send=js(lambda w, who: {"priority": "normal"})
    ),
    "POST /api/v1/support/tickets/{ticket_id}/messages": Row(
        "ticket-viewer", path=TICKET, send=js(lambda w, who: {"body": f"From {who}."})
    ),
    # Triaged already for the second handler: no change, past authorisation.
    "POST /api/v1/support/tickets/{ticket_id}/status": Row(
        "ticket-handlers", path=TICKET, send=js(lambda w, who: {"status": "triaged"})
    ),
    # A fresh ticket for each caller: a handed-over ticket leaves its hub's hands.
    "POST /api/v1/support/tickets/{ticket_id}/handover": Row(
        "ticket-handlers",
        path=lambda w: {"ticket_id": w.new_ticket()},
        fresh=True,
        send=js(lambda w, who: {"to": "central"}),
    ),
    "POST /api/v1/support/tickets/{ticket_id}/attachments": Row(
        "ticket-viewer", path=TICKET, send=lambda w, who: attachment(w.fresh("log"))
    ),
    "GET /api/v1/support/tickets/{ticket_id}/attachments/{attachment_id}": Row(
        "ticket-viewer",
        path=lambda w: {"ticket_id": w.ticket, "attachment_id": w.ticket_attachment},
    ),
    # The mail server's pipe: the central desk's gateway account (a message naming no
    # ticket is bounced: an answer past authorisation).
    "POST /api/v1/support/inbound": Row("access-team", send=lambda w, who: inbound_mail()),
    "GET /api/v1/support/report": Row(
        "desk-report", send=lambda w, who: {"params": {"hub": "brainport"}}
    ),
    # -- the portal (signed in by cookie; being sent to the sign-in page stands for 401)
    "GET /": Row("public"),
    "POST /language": Row("public", send=form(lambda w, who: {"lang": "nl", "next": "/"})),
    "GET /home": Row("signed-in"),
    "GET /home/jobs": Row("signed-in"),
    "GET /operator": Row("site-operator"),
    "GET /signin": Row("public"),
    "POST /signin": Row("public", send=form(member_token)),
    "POST /signout": Row("public"),
    "GET /signin/oidc": Row("public", around=lambda w: w.oidc_offered()),
    # Without the state this browser was given, the callback refuses (400): to everyone.
    "GET /signin/oidc/callback": Row("public", around=lambda w: w.oidc_offered()),
    "GET /notifications": Row("signed-in"),
    "GET /terms": Row("signed-in"),
    "POST /terms/{scope}/{version}/accept": Row("signed-in", path=FACTORY_TERMS),
    "POST /notifications/{notification_id}/read": Row("self", path=OWN_NOTIFICATION),
    "GET /tokens": Row("signed-in"),
    "POST /tokens": Row("signed-in", send=form(lambda w, who: {"name": w.fresh("t")})),
    "POST /tokens/{key}/revoke": Row("self", path=OWN_TOKEN),
    "GET /ssh-keys": Row("signed-in"),
    "POST /ssh-keys": Row("signed-in", send=form(ssh_key)),
    "POST /ssh-keys/{key_id}/revoke": Row("self", path=OWN_SSH_KEY),
    "GET /account/identities": Row("signed-in"),
    "POST /account/identities/link": Row("signed-in", around=lambda w: w.oidc_offered()),
    # Cancelling an offer the caller does not have leaves nothing to cancel.
    "POST /account/identities/confirm": Row(
        "signed-in", send=form(lambda w, who: {"key": w.fresh("k"), "answer": "cancel"})
    ),
    "POST /account/identities/{identity_id}/unlink": Row("self", path=OWN_IDENTITY),
    # -- the portal's job pages
    "GET /jobs": Row("signed-in"),
    "GET /endpoints": Row("signed-in"),
    "GET /endpoint-usage": Row("signed-in"),
    "GET /jobs/new": Row("signed-in"),
    "POST /jobs": Row("project-members", send=form(job_form)),
    "GET /jobs/{job_id}": Row("project-viewer", path=JOB),
    "GET /jobs/{job_id}/live": Row("project-viewer", path=JOB),
    "POST /jobs/{job_id}/cancel": Row(
        "pi-hub-or-admin", path=JOB, send=form(lambda w, who: {"confirm": "yes"})
    ),
    # -- the portal's access pages
    "GET /calls": Row("signed-in"),
    "GET /calls/{ref}/apply": Row("signed-in", path=lambda w: {"ref": w.call}),
    "POST /calls/{ref}/apply": Row(
        "project-members", path=lambda w: {"ref": w.call}, send=form(proposal_form)
    ),
    "GET /proposals": Row("signed-in"),
    "GET /proposals/{proposal_id}": Row("proposal-viewer", path=proposal("draft")),
    "POST /proposals/{proposal_id}/submit": Row("proposal-members", path=proposal("draft")),
    "POST /proposals/{proposal_id}/withdraw": Row(
        "proposal-author-or-pi",
        path=proposal("draft"),
        send=form(lambda w, who: {"confirm": "yes"}),
    ),
    "POST /proposals/{proposal_id}/review": Row(
        "assigned-reviewer",
        path=proposal("under-review", reviewer="rita"),
        send=form(review_form),
    ),
    "GET /reviews": Row("signed-in"),
    "GET /decisions": Row("call-runners"),
    "GET /proposals/{proposal_id}/decide": Row("runs-the-call", path=proposal("submitted")),
    "POST /proposals/{proposal_id}/check": Row(
        "runs-the-call", path=proposal("submitted"), send=form(lambda w, who: {"passed": "yes"})
    ),
    "POST /proposals/{proposal_id}/reviewers": Row(
        "runs-the-call",
        path=proposal("under-review"),
        send=form(reviewer_form),
    ),
    "POST /proposals/{proposal_id}/decide": Row(
        "runs-the-call",
        path=proposal("under-review"),
        send=form(lambda w, who: {"decision": "reject", "reason": "the budget is spent"}),
    ),
    # -- the portal's hub desk
    "GET /hub": Row("hub-staff"),
    # -- the portal's AI Act pages
    "GET /ai-systems": Row("signed-in"),
    "POST /ai-systems": Row("project-members-or-admin", send=form(ai_system_form)),
    "GET /ai-systems/{ref}/classify": Row("project-viewer", path=SYSTEM),
    "POST /ai-systems/{ref}/classify": Row(
        "project-members-or-admin",
        path=SYSTEM,
        send=form(lambda w, who: {"question": "ai_system", "ai_system": "yes"}),
    ),
    "POST /ai-systems/{ref}/classify/restart": Row("project-members-or-admin", path=SYSTEM),
    # -- the portal's support centre
    "GET /support": Row("signed-in"),
    "GET /support/new": Row("signed-in"),
    "POST /support/new": Row("signed-in", send=form(ticket_form)),
    "GET /support/{ticket_id}": Row("ticket-viewer", path=TICKET),
    "POST /support/{ticket_id}/messages": Row(
        "ticket-viewer", path=TICKET, send=form(lambda w, who: {"body": f"From {who}."})
    ),
}

# Where the service answers otherwise than the matrix says it should: (route, role) → what
# it answers now and why the matrix's answer is the right one. Each is pinned: once the
# service is fixed, the test says to remove the entry.
KNOWN_DEVIATIONS: dict[tuple[str, Who], tuple[Answer, str]] = {}


def answer_of(response: httpx.Response) -> Answer | int:
    """The answer as the matrix counts it; a portal page that sends the caller to sign in
    counts as 401."""
    status = response.status_code
    if status == 303 and response.headers.get("location", "").startswith("/signin"):
        return 401
    if status in {401, 403, 404}:
        return status
    return ALLOW


def listing_problems(
    listing: Listing, subject: Any, who: Who, response: httpx.Response
) -> list[str]:
    """Whether the subject is in the list exactly when the listing's rule allows."""
    found = response.json()
    items = found["items"] if isinstance(found, dict) else found
    listed = any(item[listing.key] == subject for item in items)
    should = RULES[listing.rule][who] == ALLOW
    if listed == should:
        return []
    return [f"{who}: {'lists' if listed else 'does not list'} {subject} ({listing.rule})"]


# -- the route table -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_routes() -> Iterator[dict[str, BaseRoute]]:
    """The application's operations, from the app `fabriek serve` builds."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'routes.db'}"
        prepare(url, with_demo=False)
        app = build_app(Settings(database_url=url, state_dir=Path(tmp) / "state"))
        try:
            spec = app.openapi()
            found = operations(app)
            # The walk sees at least what the OpenAPI document lists.
            for path, item in spec["paths"].items():
                for method in item:
                    assert f"{method.upper()} {path}" in found, (method, path)
            yield found
        finally:
            app.state.context.engine.dispose()


# The web-app proxy forwards any method to a job's own app: who may pass (the job's owner
# only; others 403, nobody 401 or sign-in) is asked over real HTTP and WebSockets by
# tests/test_web_apps.py against a running app, which the matrix's world has none of.
PROXIED = "/apps/{job_id}"


def test_every_route_has_a_row(app_routes: dict[str, BaseRoute]) -> None:
    served = {r for r in app_routes if not r.split(" ", 1)[1].startswith(PROXIED)}
    assert served != set(app_routes), "the web-app proxy moved: update PROXIED"
    missing = sorted(served - set(MATRIX))
    gone = sorted(set(MATRIX) - set(app_routes))
    where = "tests/test_authz_matrix.py, MATRIX (and RULES for a new rule)"
    assert not missing, f"routes without a row in the matrix: {missing}; add them to {where}"
    assert not gone, f"rows for routes no longer served: {gone}; remove them from {where}"


def test_every_rule_answers_every_role_and_is_used() -> None:
    for name, table in RULES.items():
        assert set(table) == set(Who), name
    used = {row.rule for row in MATRIX.values()}
    assert used <= set(RULES), sorted(used - set(RULES))
    assert set(RULES) <= used, f"rules no route uses: {sorted(set(RULES) - used)}"
    for (route, who), (now, _why) in KNOWN_DEVIATIONS.items():
        assert RULES[MATRIX[route].rule][who] != now, (route, who)


# -- asking every route ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(server: LiveServer) -> Iterator[World]:
    w = World(server=server, tag="az" + uuid.uuid4().hex[:6])
    with w.cleanup:
        w.build()
        yield w


def ask(
    w: World, key: str, row: Row, who: Who, params: dict[str, Any], route: BaseRoute
) -> httpx.Response:
    method, template = key.split(" ", 1)
    payload = row.send(w, who) if row.send else {}
    if row.listed is not None:
        payload["params"] = {"limit": 1000, **row.listed.query(w)}
    reads = body_type(route)
    assert ("json" in payload) == (reads is not None), f"{key}: a JSON body where it reads one"
    if reads is not None:
        reads.validate_python(payload["json"])  # a body the route's own model accepts
    try:
        return w.as_(who).request(method, template.format(**params), **payload)
    finally:
        w.restore_cookies(who)


@pytest.mark.parametrize("key", sorted(MATRIX))
def test_route_answers_every_role_as_the_matrix_says(
    key: str, world: World, app_routes: dict[str, BaseRoute]
) -> None:
    if key not in app_routes:
        pytest.fail(f"{key} is in the matrix but not served (see test_every_route_has_a_row)")
    row = MATRIX[key]
    expected = RULES[row.rule]
    wrong: list[str] = []
    with row.around(world) if row.around else nullcontext():
        params = row.path(world) if row.path and not row.fresh else {}
        subject = row.listed.subject(world) if row.listed else None
        for who in Who:
            if row.fresh and row.path:
                params = row.path(world)
            response = ask(world, key, row, who, params, app_routes[key])
            got = answer_of(response)
            want: Answer | int = expected[who]
            known = KNOWN_DEVIATIONS.get((key, who))
            if known is not None and got == want:
                wrong.append(f"{who}: answers {want} now: remove it from KNOWN_DEVIATIONS")
            elif known is not None:
                want = known[0]
            if got != want:
                detail = response.text[:200].replace("\n", " ")
                wrong.append(f"{who}: expected {want}, got {response.status_code} ({detail})")
            elif row.listed is not None and got == ALLOW:
                wrong.extend(listing_problems(row.listed, subject, who, response))
    assert not wrong, f"{key} ({row.rule}):\n  " + "\n  ".join(wrong)
