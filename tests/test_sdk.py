"""The SDK: one client with a sub-client per capability, a method for every API route (or a
reason why not), and drafts checked on this side in the API's own words."""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from pydantic import BaseModel

from fabriek.domain.access.allocations import AllocationDraft
from fabriek.domain.access.calls import CallDraft
from fabriek.domain.access.proposals import DecisionDraft, ProposalDraft, ReviewSubmission
from fabriek.domain.ai_act.models import BaseModelDraft, ModelDraft, ModelVersionDraft
from fabriek.domain.ai_act.sandboxes import SandboxDraft
from fabriek.domain.ai_act.systems import AiSystemDraft
from fabriek.domain.datasets import DatasetDraft
from fabriek.domain.endpoint_keys import EndpointKeyDraft
from fabriek.domain.endpoints import EndpointChange, EndpointDraft
from fabriek.domain.errors import InvalidInput
from fabriek.domain.identity.people import (
    OrganisationChange,
    OrganisationDraft,
    ProjectDraft,
    UserDraft,
)
from fabriek.domain.jobs import JobDraft
from fabriek.domain.sites import SiteDraft, SitePatch
from fabriek.domain.support.expertise import (
    AssignmentDraft,
    ConsultationDraft,
    ExpertDraft,
    ExpertiseRequestDraft,
    ExpertPatch,
)
from fabriek.domain.support.knowledge import ArticleDraft, ArticlePatch
from fabriek.domain.support.shapes import TicketChange, TicketDraft
from fabriek.domain.terms import TermsDraft
from fabriek.sdk.client import FabriekClient
from fabriek.sdk.core import tls_for, validated
from tests.conftest import Client

Call = Callable[[FabriekClient, Path], object]
M = TypeVar("M", bound=BaseModel)


def blank(model: type[M]) -> M:
    """A draft with no fields set: only which route it goes to matters here."""
    return model.model_construct()


SITE_AGENT = (
    "a site agent's route, called with its site token by fabriek.sdk.site_agent."
    "SiteAgentClient and sshd's commands, not by people's programs"
)
# Routes the SDK leaves out on purpose, each with the reason.
ABSENT: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "a probe for load balancers and orchestrators, not for programs",
    ("GET", "/readyz"): "a probe for load balancers and orchestrators, not for programs",
    ("GET", "/metrics"): "Prometheus' text format, scraped by Prometheus itself",
    ("GET", "/api/v1/control-plane"): (
        "an operator's view of which server leads the dispatcher and the housekeeping, "
        "read by people and monitoring (docs/operations.md), not by programs"
    ),
    ("GET", "/api/v1/registry/token"): (
        "the registry's token service, asked by podman and the registry during a login or "
        "pull (Distribution's token auth), not by people's programs"
    ),
    **{
        route: (
            "a partner factory's engine calls these with its allocation's token and a signed "
            "assertion (fabriek.engines.partner), not people's programs"
        )
        for route in (
            ("GET", "/api/v1/partner"),
            ("GET", "/api/v1/partner/jobs"),
            ("POST", "/api/v1/partner/jobs"),
        )
    },
    ("GET", "/api/v1/projects/{ref}/images"): (
        "not yet in the SDK: a project's images are listed by the API and podman itself"
    ),
    **{
        route: SITE_AGENT
        for route in (
            ("GET", "/api/v1/sites/{site}/agent/desired-state"),
            ("POST", "/api/v1/sites/{site}/agent/reports"),
            ("POST", "/api/v1/sites/{site}/agent/accounting"),
            ("GET", "/api/v1/sites/{site}/agent/whoami"),
            ("GET", "/api/v1/sites/{site}/agent/principals/{username}"),
            ("GET", "/api/v1/sites/{site}/agent/ssh-keys/{username}"),
        )
    },
}

# Every route the SDK covers, and one call of the method that sends it.
COVERED: dict[tuple[str, str], Call] = {
    ("GET", "/api/v1/whoami"): lambda c, _: c.identity.whoami(),
    ("GET", "/api/v1/tokens"): lambda c, _: c.identity.tokens(),
    ("POST", "/api/v1/tokens"): lambda c, _: c.identity.create_token("ci"),
    ("DELETE", "/api/v1/tokens/{key}"): lambda c, _: c.identity.revoke_token("k"),
    ("GET", "/api/v1/identities"): lambda c, _: c.identity.identities(),
    ("DELETE", "/api/v1/identities/{identity_id}"): lambda c, _: c.identity.unlink_identity(3),
    ("GET", "/api/v1/reference/gpu-types"): lambda c, _: c.sites.gpu_types(),
    ("GET", "/api/v1/reference/provinces"): lambda c, _: c.sites.provinces(),
    ("GET", "/api/v1/reference/hubs"): lambda c, _: c.sites.hubs(),
    ("GET", "/api/v1/sites"): lambda c, _: c.sites.list(),
    ("POST", "/api/v1/sites"): lambda c, _: c.sites.create(blank(SiteDraft)),
    ("GET", "/api/v1/sites/{ref}"): lambda c, _: c.sites.get("amsterdam"),
    ("PATCH", "/api/v1/sites/{ref}"): lambda c, _: c.sites.update("a", blank(SitePatch)),
    ("GET", "/api/v1/organisations"): lambda c, _: c.identity.organisations(),
    ("POST", "/api/v1/organisations"): lambda c, _: c.identity.create_organisation(
        blank(OrganisationDraft)
    ),
    ("GET", "/api/v1/organisations/{org_id}"): lambda c, _: c.identity.organisation(1),
    ("PATCH", "/api/v1/organisations/{org_id}"): lambda c, _: c.identity.update_organisation(
        1, blank(OrganisationChange)
    ),
    ("GET", "/api/v1/users"): lambda c, _: c.identity.users(),
    ("POST", "/api/v1/users"): lambda c, _: c.identity.create_user(blank(UserDraft)),
    ("GET", "/api/v1/users/{ref}"): lambda c, _: c.identity.user("maria"),
    ("GET", "/api/v1/projects"): lambda c, _: c.identity.projects(),
    ("POST", "/api/v1/projects"): lambda c, _: c.identity.create_project(blank(ProjectDraft)),
    ("GET", "/api/v1/projects/{ref}"): lambda c, _: c.identity.project("p"),
    ("GET", "/api/v1/projects/{ref}/members"): lambda c, _: c.identity.members("p"),
    ("POST", "/api/v1/projects/{ref}/members"): lambda c, _: c.identity.add_member("p", "u"),
    ("DELETE", "/api/v1/projects/{ref}/members/{username}"): lambda c, _: c.identity.remove_member(
        "p", "u"
    ),
    ("POST", "/api/v1/jobs"): lambda c, _: c.jobs.submit(blank(JobDraft)),
    ("GET", "/api/v1/jobs"): lambda c, _: c.jobs.list(),
    ("GET", "/api/v1/jobs/{job_id}"): lambda c, _: c.jobs.get(1),
    ("GET", "/api/v1/jobs/{job_id}/events"): lambda c, _: c.jobs.events(1),
    ("POST", "/api/v1/jobs/{job_id}/cancel"): lambda c, _: c.jobs.cancel(1),
    ("GET", "/api/v1/jobs/{job_id}/logs"): lambda c, _: c.jobs.logs(1),
    ("GET", "/api/v1/notifications"): lambda c, _: c.notifications.list(),
    ("GET", "/api/v1/notifications/settings"): lambda c, _: c.notifications.settings(),
    ("PUT", "/api/v1/notifications/settings"): lambda c, _: c.notifications.update_settings(
        "digest"
    ),
    ("POST", "/api/v1/notifications/read-all"): lambda c, _: c.notifications.read_all(),
    ("POST", "/api/v1/notifications/{notification_id}/read"): lambda c, _: c.notifications.read(1),
    ("GET", "/api/v1/terms"): lambda c, _: c.terms.newest(),
    ("POST", "/api/v1/terms"): lambda c, _: c.terms.publish(blank(TermsDraft)),
    ("GET", "/api/v1/terms/{scope}"): lambda c, _: c.terms.get("factory"),
    ("GET", "/api/v1/terms/{scope}/{version}"): lambda c, _: c.terms.get("factory", 1),
    ("POST", "/api/v1/terms/{scope}/{version}/accept"): lambda c, _: c.terms.accept("factory", 1),
    ("GET", "/api/v1/users/me/terms"): lambda c, _: c.terms.mine(),
    ("GET", "/api/v1/allocations"): lambda c, _: c.access.allocations(),
    ("POST", "/api/v1/allocations"): lambda c, _: c.access.create_allocation(
        blank(AllocationDraft)
    ),
    ("GET", "/api/v1/allocations/{allocation_id}"): lambda c, _: c.access.allocation(1),
    ("GET", "/api/v1/allocations/{allocation_id}/charges"): lambda c, _: c.access.charges(1),
    ("GET", "/api/v1/tracks"): lambda c, _: c.access.tracks(),
    ("GET", "/api/v1/calls"): lambda c, _: c.access.calls(),
    ("POST", "/api/v1/calls"): lambda c, _: c.access.create_call(blank(CallDraft)),
    ("GET", "/api/v1/calls/{ref}"): lambda c, _: c.access.call("x"),
    ("POST", "/api/v1/proposals"): lambda c, _: c.access.create_proposal(blank(ProposalDraft)),
    ("GET", "/api/v1/proposals"): lambda c, _: c.access.proposals(),
    ("GET", "/api/v1/proposals/{proposal_id}"): lambda c, _: c.access.proposal(1),
    ("POST", "/api/v1/proposals/{proposal_id}/submit"): lambda c, _: c.access.submit_proposal(1),
    ("POST", "/api/v1/proposals/{proposal_id}/withdraw"): lambda c, _: c.access.withdraw_proposal(
        1
    ),
    ("POST", "/api/v1/proposals/{proposal_id}/admin-check"): lambda c, _: c.access.admin_check(
        1, passed=True
    ),
    ("POST", "/api/v1/proposals/{proposal_id}/reviewers"): lambda c, _: c.access.assign_reviewer(
        1, "r", "technical"
    ),
    ("POST", "/api/v1/proposals/{proposal_id}/reviews"): lambda c, _: c.access.submit_review(
        1, blank(ReviewSubmission)
    ),
    ("POST", "/api/v1/proposals/{proposal_id}/decision"): lambda c, _: c.access.decide(
        1, blank(DecisionDraft)
    ),
    ("GET", "/api/v1/reviews"): lambda c, _: c.access.reviews(),
    ("POST", "/api/v1/allocations/{allocation_id}/final-report"): lambda c, _: (
        c.access.file_final_report(1, "done")
    ),
    ("GET", "/api/v1/usage"): lambda c, _: c.usage.lines(),
    ("GET", "/api/v1/audit"): lambda c, _: c.audit.entries(),
    ("GET", "/api/v1/audit/head"): lambda c, _: c.audit.head(),
    ("GET", "/api/v1/audit/verify"): lambda c, _: c.audit.verify(),
    ("POST", "/api/v1/projects/{project}/endpoints"): lambda c, _: c.endpoints.create(
        "p", EndpointDraft(name="e", model="m")
    ),
    ("GET", "/api/v1/projects/{project}/endpoints"): lambda c, _: c.endpoints.list("p"),
    ("GET", "/api/v1/projects/{project}/endpoints/{name}"): lambda c, _: c.endpoints.get("p", "e"),
    ("PATCH", "/api/v1/projects/{project}/endpoints/{name}"): lambda c, _: c.endpoints.update(
        "p", "e", EndpointChange(max_replicas=2)
    ),
    ("DELETE", "/api/v1/projects/{project}/endpoints/{name}"): lambda c, _: c.endpoints.delete(
        "p", "e"
    ),
    ("POST", "/api/v1/projects/{project}/endpoint-keys"): lambda c, _: c.endpoint_keys.create(
        "p", EndpointKeyDraft(name="k")
    ),
    ("GET", "/api/v1/projects/{project}/endpoint-keys"): lambda c, _: c.endpoint_keys.list_keys(
        "p"
    ),
    ("DELETE", "/api/v1/projects/{project}/endpoint-keys/{key}"): lambda c, _: (
        c.endpoint_keys.revoke("p", "k")
    ),
    ("GET", "/api/v1/projects/{project}/endpoint-usage"): lambda c, _: c.endpoint_keys.usage("p"),
    ("GET", "/api/v1/projects/{project}/endpoint-energy"): lambda c, _: c.endpoint_keys.energy("p"),
    ("GET", "/api/v1/datasets"): lambda c, _: c.datasets.list(),
    ("POST", "/api/v1/datasets"): lambda c, _: c.datasets.register(blank(DatasetDraft)),
    ("GET", "/api/v1/datasets/{project}/{name}"): lambda c, _: c.datasets.get("p", "d"),
    ("DELETE", "/api/v1/datasets/{project}/{name}"): lambda c, _: c.datasets.delete("p", "d"),
    ("POST", "/api/v1/datasets/{project}/{name}/versions"): lambda c, f: c.datasets.push(
        "p", "d", f
    ),
    ("GET", "/api/v1/datasets/{project}/{name}/content"): lambda c, f: c.datasets.pull(
        "p", "d", f.with_name("pulled")
    ),
    ("DELETE", "/api/v1/datasets/{project}/{name}/versions/{number}"): lambda c, _: (
        c.datasets.delete("p", "d", version=1)
    ),
    ("POST", "/api/v1/datasets/{project}/{name}/grants"): lambda c, _: c.datasets.grant(
        "p", "d", "q"
    ),
    ("DELETE", "/api/v1/datasets/{project}/{name}/grants/{grantee}"): lambda c, _: (
        c.datasets.revoke("p", "d", "q")
    ),
    ("GET", "/api/v1/organisation-keys"): lambda c, _: c.datasets.organisation_keys(),
    ("POST", "/api/v1/organisation-keys/{organisation_id}/rotate"): lambda c, _: (
        c.datasets.rotate_organisation_key(1)
    ),
    ("GET", "/api/v1/ai-act/questionnaire"): lambda c, _: c.ai_act.questionnaire(),
    ("GET", "/api/v1/ai-systems"): lambda c, _: c.ai_act.systems(),
    ("POST", "/api/v1/ai-systems"): lambda c, _: c.ai_act.register_system(blank(AiSystemDraft)),
    ("GET", "/api/v1/ai-systems/{ref}"): lambda c, _: c.ai_act.system("s"),
    ("GET", "/api/v1/ai-systems/{ref}/classification"): lambda c, _: c.ai_act.classification("s"),
    ("POST", "/api/v1/ai-systems/{ref}/classification/answers"): lambda c, _: (
        c.ai_act.answer_classification("s", {"q": "yes"})
    ),
    ("GET", "/api/v1/ai-systems/{ref}/classification/result"): lambda c, _: (
        c.ai_act.classification_result("s")
    ),
    ("GET", "/api/v1/ai-systems/{ref}/classifications"): lambda c, _: c.ai_act.classifications("s"),
    ("POST", "/api/v1/ai-systems/{ref}/classifications"): lambda c, _: (
        c.ai_act.start_classification("s")
    ),
    ("GET", "/api/v1/models"): lambda c, _: c.ai_act.models(),
    ("POST", "/api/v1/models"): lambda c, _: c.ai_act.create_model(blank(ModelDraft)),
    ("GET", "/api/v1/models/rules"): lambda c, _: c.ai_act.rules(),
    ("GET", "/api/v1/models/projection"): lambda c, _: c.ai_act.compute_projection(proposal=1),
    ("POST", "/api/v1/models/reports"): lambda c, _: c.ai_act.report_job(1, mfu=0.4),
    ("GET", "/api/v1/models/{name}"): lambda c, _: c.ai_act.model("m"),
    ("POST", "/api/v1/models/{name}/versions"): lambda c, _: c.ai_act.add_model_version(
        "m", blank(ModelVersionDraft)
    ),
    ("POST", "/api/v1/models/{name}/versions/{version}/bases"): lambda c, _: (
        c.ai_act.add_model_base("m:1", blank(BaseModelDraft))
    ),
    ("GET", "/api/v1/models/{name}/versions/{version}/ledger"): lambda c, _: c.ai_act.model_ledger(
        "m:1"
    ),
    ("PUT", "/api/v1/models/{name}/versions/{version}/documentation"): lambda c, _: (
        c.ai_act.set_model_documentation("m:1", {"intended_use": "x"})
    ),
    ("GET", "/api/v1/models/{name}/versions/{version}/documentation"): lambda c, _: (
        c.ai_act.model_documentation("m:1")
    ),
    ("PUT", "/api/v1/allocations/{allocation_id}/sandbox"): lambda c, _: c.ai_act.mark_sandbox(
        1, blank(SandboxDraft)
    ),
    ("GET", "/api/v1/allocations/{allocation_id}/sandbox"): lambda c, _: c.ai_act.sandbox(1),
    ("PUT", "/api/v1/allocations/{allocation_id}/sandbox/{kind}"): lambda c, _: (
        c.ai_act.file_sandbox_document(1, "plan", "# Plan")
    ),
    ("GET", "/api/v1/allocations/{allocation_id}/sandbox/{kind}"): lambda c, _: (
        c.ai_act.sandbox_document(1, "plan")
    ),
    ("GET", "/api/v1/skills"): lambda c, _: c.support.skills(),
    ("GET", "/api/v1/experts"): lambda c, _: c.support.experts(),
    ("POST", "/api/v1/experts"): lambda c, _: c.support.create_expert(blank(ExpertDraft)),
    ("GET", "/api/v1/experts/{expert_id}"): lambda c, _: c.support.expert(1),
    ("PATCH", "/api/v1/experts/{expert_id}"): lambda c, _: c.support.update_expert(
        1, blank(ExpertPatch)
    ),
    ("GET", "/api/v1/expertise-requests"): lambda c, _: c.support.expertise_requests(),
    ("POST", "/api/v1/expertise-requests"): lambda c, _: c.support.request_expertise(
        blank(ExpertiseRequestDraft)
    ),
    ("GET", "/api/v1/expertise-requests/{request_id}"): lambda c, _: c.support.expertise_request(1),
    ("GET", "/api/v1/expertise-requests/{request_id}/matches"): lambda c, _: (
        c.support.expertise_matches(1)
    ),
    ("POST", "/api/v1/expertise-requests/{request_id}/assignments"): lambda c, _: (
        c.support.assign_expert(1, blank(AssignmentDraft))
    ),
    ("POST", "/api/v1/expertise-requests/{request_id}/consultations"): lambda c, _: (
        c.support.log_consultation(1, blank(ConsultationDraft))
    ),
    ("GET", "/api/v1/kb/search"): lambda c, _: c.support.search_articles("gpu"),
    ("POST", "/api/v1/kb/suggestions"): lambda c, _: c.support.suggest_articles("my job"),
    ("GET", "/api/v1/kb/articles"): lambda c, _: c.support.articles(),
    ("POST", "/api/v1/kb/articles"): lambda c, _: c.support.create_article(blank(ArticleDraft)),
    ("GET", "/api/v1/kb/articles/{slug}"): lambda c, _: c.support.article("a"),
    ("PATCH", "/api/v1/kb/articles/{slug}"): lambda c, _: c.support.update_article(
        "a", blank(ArticlePatch)
    ),
    ("GET", "/api/v1/support/categories"): lambda c, _: c.support.categories(),
    ("GET", "/api/v1/support/tickets"): lambda c, _: c.support.tickets(),
    ("POST", "/api/v1/support/tickets"): lambda c, _: c.support.open_ticket(blank(TicketDraft)),
    ("GET", "/api/v1/support/tickets/{ticket_id}"): lambda c, _: c.support.ticket(1),
    ("PATCH", "/api/v1/support/tickets/{ticket_id}"): lambda c, _: c.support.update_ticket(
        1, blank(TicketChange)
    ),
    ("POST", "/api/v1/support/tickets/{ticket_id}/messages"): lambda c, _: c.support.reply(
        1, "thanks"
    ),
    ("POST", "/api/v1/support/tickets/{ticket_id}/status"): lambda c, _: c.support.set_status(
        1, "resolved"
    ),
    ("POST", "/api/v1/support/tickets/{ticket_id}/handover"): lambda c, _: c.support.hand_over(
        1, "central"
    ),
    ("POST", "/api/v1/support/tickets/{ticket_id}/attachments"): lambda c, f: c.support.attach(
        1, f, "text/plain"
    ),
    ("GET", "/api/v1/support/tickets/{ticket_id}/attachments/{attachment_id}"): lambda c, _: (
        c.support.attachment(1, 2)
    ),
    ("POST", "/api/v1/support/inbound"): lambda c, _: c.support.inbound_email(b"Subject: x\n"),
    ("GET", "/api/v1/support/report"): lambda c, _: c.support.report(),
    ("POST", "/api/v1/sites/{ref}/agent-token"): lambda c, _: c.sites.agent_token("a"),
    ("GET", "/api/v1/sites/{site}/agent"): lambda c, _: c.sites.agent("a"),
    ("GET", "/api/v1/sites/{site}/harvest"): lambda c, _: c.sites.harvest("a"),
    ("POST", "/api/v1/sites/{site}/harvest"): lambda c, _: c.sites.harvest_now("a"),
    ("GET", "/api/v1/users/me/account"): lambda c, _: c.accounts.me(),
    ("GET", "/api/v1/users/me/ssh-keys"): lambda c, _: c.ssh.keys(),
    ("POST", "/api/v1/users/me/ssh-keys"): lambda c, _: c.ssh.add_key("ssh-ed25519 AAAA"),
    ("DELETE", "/api/v1/users/me/ssh-keys/{key_id}"): lambda c, _: c.ssh.remove_key(1),
    ("POST", "/api/v1/users/me/ssh-certificates"): lambda c, _: c.ssh.certificate("k"),
    ("GET", "/api/v1/users/me/ssh-ca"): lambda c, _: c.ssh.ca_public_key(),
    **{
        (method, f"/api/v1/{kind}s/{{ref}}/suspension"): (
            lambda c, _, k=kind, m=method: c.identity.set_suspension(
                k, "1", "unpaid" if m == "PUT" else None
            )
        )
        for kind in ("user", "project", "allocation")
        for method in ("PUT", "DELETE")
    },
}


class Sent(Exception):
    """Raised by the recording transport: the request left, nothing needs to come back."""

    def __init__(self, request: httpx.Request) -> None:
        super().__init__(request.method, request.url.path)
        self.route = (request.method, request.url.path)


def _stop(request: httpx.Request) -> httpx.Response:
    request.read()  # an upload's body is a generator: draining it proves it can be sent
    raise Sent(request)


def _matches(template: str, path: str) -> bool:
    pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
    return re.fullmatch(pattern, path) is not None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_api_route_has_an_sdk_method_or_a_reason(client: Client) -> None:
    spec = client().get("/openapi.json").json()
    routes = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert routes - COVERED.keys() - ABSENT.keys() == set(), "routes the SDK does not cover"
    assert COVERED.keys() - routes == set(), "the table names routes the API does not have"
    assert not COVERED.keys() & ABSENT.keys()


@pytest.mark.parametrize("route", sorted(COVERED), ids=" ".join)
def test_each_sdk_method_sends_its_route(route: tuple[str, str], tmp_path: Path) -> None:
    upload = tmp_path / "upload.txt"
    upload.write_text("some bytes\n")
    sdk = FabriekClient("http://fabriek.test", "t", transport=httpx.MockTransport(_stop))
    with sdk, pytest.raises(Sent) as sent:
        COVERED[route](sdk, upload)
    method, path = sent.value.route
    assert method == route[0] and _matches(route[1], path), (sent.value.route, route)


def test_the_sub_clients_are_made_once_and_typed() -> None:
    with FabriekClient("http://fabriek.test") as sdk:
        assert sdk.jobs is sdk.jobs
        assert type(sdk.jobs).__name__ == "JobsClient"
        assert set(FabriekClient.capabilities()) == {
            "identity", "sites", "jobs", "access", "datasets", "ai_act", "support", "usage",
            "audit", "notifications", "terms", "ssh", "accounts", "endpoints", "endpoint_keys",
        }  # fmt: skip


def test_a_draft_is_checked_here_in_the_apis_words() -> None:
    assert validated(TicketDraft, {"subject": "GPU?", "category": "jobs"}).priority == "normal"
    with pytest.raises(InvalidInput) as bad:
        validated(TicketDraft, {"subject": "ab", "category": "jobs", "colour": "red"})
    detail = str(bad.value)
    assert "subject: String should have at least 3 characters" in detail
    assert "colour: Extra inputs are not permitted" in detail
    assert [p.field for p in bad.value.problems] == ["subject", "colour"]


def test_a_draft_is_sent_with_only_the_fields_given(tmp_path: Path) -> None:
    bodies: list[Any] = []

    def answer(request: httpx.Request) -> httpx.Response:
        bodies.append(request.read())
        raise Sent(request)

    sdk = FabriekClient("http://fabriek.test", transport=httpx.MockTransport(answer))
    with sdk, pytest.raises(Sent):
        sdk.datasets.register(DatasetDraft(project="dutch-llm", name="scans"))
    assert bodies == [b'{"project":"dutch-llm","name":"scans"}']


def test_a_plain_http_server_loads_no_certificate_store_and_tls_is_still_verified() -> None:
    """For http the client skips loading the CA bundle (25 ms of every CLI command) with a
    TLS context that trusts nothing: a connection that turned to TLS would fail, not pass
    unchecked. For https it verifies with httpx's default store, as before."""
    plain = tls_for("http://127.0.0.1:8000")
    assert isinstance(plain, ssl.SSLContext)
    assert plain.verify_mode is ssl.CERT_REQUIRED and plain.check_hostname
    assert plain.get_ca_certs() == []
    assert tls_for("HTTP://factory.example") is not True
    assert tls_for("https://factory.example") is True
