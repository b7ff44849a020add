"""A typed httpx client of the HTTP API. The CLI and scripts use it; it returns domain values."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel

from fabriek.domain.access.allocations import Allocation, Charge
from fabriek.domain.access.calls import Call
from fabriek.domain.access.proposals import AllocationSummary, Proposal, Review
from fabriek.domain.ai_ledger import Ledger
from fabriek.domain.ai_models import (
    ComputeProjection,
    JobReport,
    Model,
    ModelDetail,
    ModelVersion,
    RulesOut,
)
from fabriek.domain.ai_systems import AiSystem, Classification
from fabriek.domain.audit import AuditEntryView, VerifyReport
from fabriek.domain.datasets import (
    Dataset,
    DatasetGrant,
    DatasetVersion,
    KeyRotation,
    OrganisationKey,
)
from fabriek.domain.jobs import Job, JobEvent
from fabriek.domain.notifications import Notification, NotificationSettings
from fabriek.domain.people import (
    Membership,
    NewTokenInfo,
    Organisation,
    Project,
    TokenInfo,
    User,
)
from fabriek.domain.sandboxes import Sandbox
from fabriek.domain.sites import Site
from fabriek.domain.support.expertise import Expert, ExpertiseRequest, Skill
from fabriek.domain.support.knowledge import Article, ArticleSummary, Suggestion
from fabriek.domain.support.matching import RequestMatches
from fabriek.domain.support.report import SupportReport
from fabriek.domain.support.shapes import (
    Attachment,
    CategoryInfo,
    InboundResult,
    Message,
    Ticket,
    TicketSummary,
)
from fabriek.domain.usage import UsageLine
from fabriek.sdk.transfer import Progress, file_blocks, file_sha256, receive

M = TypeVar("M", bound=BaseModel)


class ApiError(Exception):
    """The API answered with a problem document."""

    def __init__(
        self, status: int, detail: str, errors: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []


class ApiUnreachable(Exception):
    """No answer from the server at all."""


@dataclass(frozen=True)
class Listing(Generic[M]):
    items: list[M]
    total: int


class FabriekClient:
    """One client per server and token; close it, or use it as a context manager."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def __enter__(self) -> FabriekClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- plumbing -------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request; raise ApiError with the problem's detail on any 4xx/5xx."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiUnreachable(f"cannot reach Fabriek at {self.url}: {exc}") from None
        if response.status_code >= 400:
            try:
                body = response.json()
                detail = str(body.get("detail") or body.get("title") or response.reason_phrase)
                errors = body.get("errors")
            except ValueError:
                detail, errors = f"{response.status_code} {response.reason_phrase}", None
            raise ApiError(response.status_code, detail, errors)
        return response

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        return self.request("GET", f"/api/v1{path}", params=clean).json()

    def _post(self, path: str, body: Mapping[str, Any]) -> Any:
        return self.request("POST", f"/api/v1{path}", json=body).json()

    def _listing(self, model: type[M], path: str, params: Mapping[str, Any]) -> Listing[M]:
        body = self._get(path, params)
        return Listing([model.model_validate(i) for i in body["items"]], body["total"])

    # --- identity -------------------------------------------------------------------------

    def whoami(self) -> dict[str, Any]:
        result: dict[str, Any] = self._get("/whoami")
        return result

    def create_token(self, name: str = "cli", expires_in_days: int | None = None) -> NewTokenInfo:
        body: dict[str, Any] = {"name": name}
        if expires_in_days:
            body["expires_in_days"] = expires_in_days
        return NewTokenInfo.model_validate(self._post("/tokens", body))

    def tokens(self) -> list[TokenInfo]:
        return [TokenInfo.model_validate(t) for t in self._get("/tokens")]

    def revoke_token(self, key: str) -> TokenInfo:
        return TokenInfo.model_validate(self.request("DELETE", f"/api/v1/tokens/{key}").json())

    # --- the factory ----------------------------------------------------------------------

    def sites(self, limit: int = 100, offset: int = 0, **filters: Any) -> Listing[Site]:
        return self._listing(Site, "/sites", {"limit": limit, "offset": offset, **filters})

    def site(self, ref: str) -> Site:
        return Site.model_validate(self._get(f"/sites/{ref}"))

    def create_site(self, body: Mapping[str, Any]) -> Site:
        return Site.model_validate(self._post("/sites", body))

    def organisations(
        self, limit: int = 100, offset: int = 0, **filters: Any
    ) -> Listing[Organisation]:
        return self._listing(
            Organisation, "/organisations", {"limit": limit, "offset": offset, **filters}
        )

    def create_organisation(self, body: Mapping[str, Any]) -> Organisation:
        return Organisation.model_validate(self._post("/organisations", body))

    def users(self, limit: int = 100, offset: int = 0, q: str | None = None) -> Listing[User]:
        return self._listing(User, "/users", {"limit": limit, "offset": offset, "q": q})

    def create_user(self, body: Mapping[str, Any]) -> User:
        return User.model_validate(self._post("/users", body))

    def projects(self, limit: int = 100, offset: int = 0, **filters: Any) -> Listing[Project]:
        return self._listing(Project, "/projects", {"limit": limit, "offset": offset, **filters})

    def project(self, ref: str) -> Project:
        return Project.model_validate(self._get(f"/projects/{ref}"))

    def create_project(self, body: Mapping[str, Any]) -> Project:
        return Project.model_validate(self._post("/projects", body))

    def members(self, project: str) -> list[Membership]:
        return [Membership.model_validate(m) for m in self._get(f"/projects/{project}/members")]

    def add_member(self, project: str, username: str, role: str = "member") -> Membership:
        body = {"username": username, "role": role}
        return Membership.model_validate(self._post(f"/projects/{project}/members", body))

    def remove_member(self, project: str, username: str) -> None:
        self.request("DELETE", f"/api/v1/projects/{project}/members/{username}")

    # --- jobs -----------------------------------------------------------------------------

    def submit_job(self, body: Mapping[str, Any]) -> Job:
        """Queue a job (see `JobDraft` for the fields)."""
        return Job.model_validate(self._post("/jobs", body))

    def jobs(
        self,
        limit: int = 100,
        offset: int = 0,
        states: Sequence[str] | None = None,
        **filters: Any,
    ) -> Listing[Job]:
        params = {"limit": limit, "offset": offset, "state": list(states or []) or None, **filters}
        return self._listing(Job, "/jobs", params)

    def job(self, job_id: int) -> Job:
        return Job.model_validate(self._get(f"/jobs/{job_id}"))

    def job_events(self, job_id: int) -> list[JobEvent]:
        return [JobEvent.model_validate(e) for e in self._get(f"/jobs/{job_id}/events")]

    def cancel_job(self, job_id: int) -> Job:
        return Job.model_validate(self._post(f"/jobs/{job_id}/cancel", {}))

    def logs(self, job_id: int, stream: str = "stdout", offset: int = 0) -> bytes:
        params = {"stream": stream, "offset": offset}
        return self.request("GET", f"/api/v1/jobs/{job_id}/logs", params=params).content

    def follow_logs(self, job_id: int, stream: str = "stdout") -> Iterator[bytes]:
        """The job's output as it comes, until the job ends."""
        params = {"stream": stream, "follow": "true"}
        try:
            with self._http.stream(
                "GET", f"/api/v1/jobs/{job_id}/logs", params=params, timeout=None
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise ApiError(response.status_code, str(response.json().get("detail")))
                yield from response.iter_bytes()
        except httpx.TransportError as exc:
            raise ApiUnreachable(f"lost the connection to {self.url}: {exc}") from None

    # --- notifications --------------------------------------------------------------------

    def notifications(
        self, limit: int = 100, offset: int = 0, unread: bool | None = None
    ) -> Listing[Notification]:
        """One's own notifications, newest first; `unread=True` for only the unread ones."""
        params = {"limit": limit, "offset": offset, "unread": unread}
        return self._listing(Notification, "/notifications", params)

    def read_notification(self, notification_id: int) -> Notification:
        """Mark one notification read."""
        return Notification.model_validate(self._post(f"/notifications/{notification_id}/read", {}))

    def read_all_notifications(self) -> int:
        """Mark every unread notification read; how many were."""
        return int(self._post("/notifications/read-all", {})["marked"])

    def notification_settings(self) -> NotificationSettings:
        """How one's notifications are e-mailed."""
        return NotificationSettings.model_validate(self._get("/notifications/settings"))

    def update_notification_settings(
        self, delivery: str | None = None, muted: Sequence[str] | None = None
    ) -> NotificationSettings:
        """Change delivery (digest, immediate, none) and/or replace the muted kinds."""
        body: dict[str, Any] = {}
        if delivery is not None:
            body["delivery"] = delivery
        if muted is not None:
            body["muted"] = list(muted)
        response = self.request("PUT", "/api/v1/notifications/settings", json=body)
        return NotificationSettings.model_validate(response.json())

    # --- access: tracks, calls, proposals, reviews ---------------------------------------

    def tracks(self) -> dict[str, Any]:
        """The configured access tracks and GPU-hour factors."""
        result: dict[str, Any] = self._get("/tracks")
        return result

    def calls(self, limit: int = 100, offset: int = 0, **filters: Any) -> Listing[Call]:
        """Calls for proposals; `open=True` keeps those open now, `track=` one track's."""
        return self._listing(Call, "/calls", {"limit": limit, "offset": offset, **filters})

    def call(self, ref: str) -> Call:
        return Call.model_validate(self._get(f"/calls/{ref}"))

    def create_call(self, body: Mapping[str, Any]) -> Call:
        return Call.model_validate(self._post("/calls", body))

    def create_proposal(self, body: Mapping[str, Any]) -> Proposal:
        """Write a draft proposal (see `ProposalDraft` for the fields)."""
        return Proposal.model_validate(self._post("/proposals", body))

    def proposals(
        self,
        limit: int = 100,
        offset: int = 0,
        states: Sequence[str] | None = None,
        **filters: Any,
    ) -> Listing[Proposal]:
        params = {"limit": limit, "offset": offset, "state": list(states or []) or None, **filters}
        return self._listing(Proposal, "/proposals", params)

    def proposal(self, proposal_id: int) -> Proposal:
        return Proposal.model_validate(self._get(f"/proposals/{proposal_id}"))

    def submit_proposal(self, proposal_id: int) -> Proposal:
        return Proposal.model_validate(self._post(f"/proposals/{proposal_id}/submit", {}))

    def withdraw_proposal(self, proposal_id: int) -> Proposal:
        return Proposal.model_validate(self._post(f"/proposals/{proposal_id}/withdraw", {}))

    def admin_check(self, proposal_id: int, passed: bool, note: str = "") -> Proposal:
        body = {"passed": passed, "note": note}
        return Proposal.model_validate(self._post(f"/proposals/{proposal_id}/admin-check", body))

    def assign_reviewer(self, proposal_id: int, reviewer: str, kind: str) -> Review:
        body = {"reviewer": reviewer, "kind": kind}
        return Review.model_validate(self._post(f"/proposals/{proposal_id}/reviewers", body))

    def submit_review(self, proposal_id: int, body: Mapping[str, Any]) -> Review:
        """Submit one's own review (see `ReviewSubmission` for the fields)."""
        return Review.model_validate(self._post(f"/proposals/{proposal_id}/reviews", body))

    def decide(self, proposal_id: int, body: Mapping[str, Any]) -> Proposal:
        """Decide a proposal (see `DecisionDraft` for the fields)."""
        return Proposal.model_validate(self._post(f"/proposals/{proposal_id}/decision", body))

    def reviews(self, limit: int = 100, offset: int = 0, pending: bool = False) -> Listing[Review]:
        """The reviews assigned to the signed-in user."""
        params = {"limit": limit, "offset": offset, "pending": pending or None}
        return self._listing(Review, "/reviews", params)

    def file_final_report(self, allocation_id: int, report: str) -> AllocationSummary:
        body = {"report": report}
        path = f"/allocations/{allocation_id}/final-report"
        return AllocationSummary.model_validate(self._post(path, body))

    # --- allocations and budgets ----------------------------------------------------------

    def allocations(
        self,
        limit: int = 100,
        offset: int = 0,
        project: str | None = None,
        active: bool | None = None,
    ) -> Listing[Allocation]:
        """Allocations of the caller's projects, each with its budget now."""
        params = {"limit": limit, "offset": offset, "project": project, "active": active}
        return self._listing(Allocation, "/allocations", params)

    def allocation(self, allocation_id: int) -> Allocation:
        return Allocation.model_validate(self._get(f"/allocations/{allocation_id}"))

    def charges(self, allocation_id: int) -> list[Charge]:
        """The allocation's ledger: one line per job run charged to it."""
        return [
            Charge.model_validate(c) for c in self._get(f"/allocations/{allocation_id}/charges")
        ]

    def create_allocation(self, body: Mapping[str, Any]) -> Allocation:
        """Grant an allocation directly (see `AllocationDraft` for the fields)."""
        return Allocation.model_validate(self._post("/allocations", body))

    # --- usage --------------------------------------------------------------------------

    def usage(
        self,
        by: str = "project",
        step: str = "total",
        month: str | None = None,
        year: str | None = None,
    ) -> list[UsageLine]:
        """GPU-hours, energy, carbon, water and reused heat, summed `by` a level per `step`."""
        params = {"by": by, "step": step, "month": month, "year": year}
        return [UsageLine.model_validate(u) for u in self._get("/usage", params)]

    # --- audit trail --------------------------------------------------------------------

    def audit_entries(
        self,
        limit: int = 100,
        offset: int = 0,
        dataset: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        project: str | None = None,
        since: str | None = None,
    ) -> Listing[AuditEntryView]:
        """Audit entries the caller may see, newest first."""
        params = {
            "limit": limit, "offset": offset, "dataset": dataset, "actor": actor,
            "action": action, "project": project, "since": since,
        }  # fmt: skip
        return self._listing(AuditEntryView, "/audit", params)

    def audit_head(self) -> str:
        """The audit trail's head, `SEQ:HASH`, to write down elsewhere (admins)."""
        return str(self._get("/audit/head")["head"])

    def audit_verify(self, expected_head: str | None = None) -> VerifyReport:
        """Check the whole audit chain (admins); `ok` is false when it is broken. The server
        reads every entry (some 10,000 a second), so a long trail may take minutes."""
        params = {"expected_head": expected_head} if expected_head else {}
        answer = self.request("GET", "/api/v1/audit/verify", params=params, timeout=1800.0)
        return VerifyReport.model_validate(answer.json())

    # --- datasets -----------------------------------------------------------------------

    def datasets(
        self,
        limit: int = 100,
        offset: int = 0,
        project: str | None = None,
        name: str | None = None,
    ) -> Listing[Dataset]:
        """Datasets of the caller's projects and those granted to them."""
        params = {"limit": limit, "offset": offset, "project": project, "name": name}
        return self._listing(Dataset, "/datasets", params)

    def dataset(self, project: str, name: str) -> Dataset:
        """One dataset with its versions (and, for its owners, its grants)."""
        return Dataset.model_validate(self._get(f"/datasets/{project}/{name}"))

    def register_dataset(self, body: Mapping[str, Any]) -> Dataset:
        """Register a dataset (see `DatasetDraft` for the fields)."""
        return Dataset.model_validate(self._post("/datasets", body))

    def push_version(
        self,
        project: str,
        name: str,
        path: Path,
        sha256: str | None = None,
        progress: Progress | None = None,
    ) -> DatasetVersion:
        """Upload a file as the dataset's next version, streamed; the server keeps it only
        if its SHA-256 (computed here when not given) matches what arrived."""
        digest = sha256 or file_sha256(path)
        headers = {"X-Content-SHA256": digest, "Content-Length": str(path.stat().st_size)}
        response = self.request(
            "POST",
            f"/api/v1/datasets/{project}/{name}/versions",
            content=file_blocks(path, progress),
            headers=headers,
            timeout=_TRANSFER_TIMEOUT,
        )
        return DatasetVersion.model_validate(response.json())

    def pull_version(
        self,
        project: str,
        name: str,
        dest: Path,
        version: int | None = None,
        progress: Progress | None = None,
        started: Callable[[int], None] | None = None,
    ) -> tuple[int, str]:
        """Download a version (the latest by default) to `dest`, through a temporary file
        renamed only once the SHA-256 checks out; `started(size)` is told the size first.
        Returns the version number and SHA-256."""
        params = {"version": version} if version is not None else {}
        path = f"/api/v1/datasets/{project}/{name}/content"
        try:
            with self._http.stream(
                "GET", path, params=params, timeout=_TRANSFER_TIMEOUT
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _api_error(response)
                if started:
                    started(int(response.headers.get("content-length", "0")))
                digest = receive(response, dest, progress)
                return int(response.headers.get("x-dataset-version", "0")), digest
        except httpx.TransportError as exc:
            raise ApiUnreachable(f"lost the connection to {self.url}: {exc}") from None

    def grant_dataset(
        self, project: str, name: str, grantee: str, cross_organisation: bool = False
    ) -> DatasetGrant:
        """Let `grantee`'s members read the dataset."""
        body = {"project": grantee, "cross_organisation": cross_organisation}
        return DatasetGrant.model_validate(self._post(f"/datasets/{project}/{name}/grants", body))

    def revoke_dataset(self, project: str, name: str, grantee: str) -> None:
        self.request("DELETE", f"/api/v1/datasets/{project}/{name}/grants/{grantee}")

    def delete_dataset(self, project: str, name: str, version: int | None = None) -> None:
        """Delete the dataset (or one version): its keys are destroyed for good."""
        path = f"/api/v1/datasets/{project}/{name}"
        self.request("DELETE", path if version is None else f"{path}/versions/{version}")

    def organisation_keys(self) -> list[OrganisationKey]:
        return [OrganisationKey.model_validate(k) for k in self._get("/organisation-keys")]

    def rotate_organisation_key(self, organisation_id: int) -> KeyRotation:
        """A new key version for the organisation; every data key is re-wrapped under it."""
        return KeyRotation.model_validate(
            self._post(f"/organisation-keys/{organisation_id}/rotate", {})
        )

    # --- AI models (EU AI Act) -------------------------------------------------------------

    def models(
        self, limit: int = 100, offset: int = 0, project: str | None = None
    ) -> Listing[Model]:
        """The AI models of the projects you can see, newest first."""
        params = {"limit": limit, "offset": offset, "project": project}
        return self._listing(Model, "/models", params)

    def model(self, name: str) -> ModelDetail:
        return ModelDetail.model_validate(self._get(f"/models/{name}"))

    def create_model(self, body: Mapping[str, Any]) -> ModelDetail:
        """Register a model (see `ModelDraft` for the fields)."""
        return ModelDetail.model_validate(self._post("/models", body))

    def add_model_version(self, name: str, body: Mapping[str, Any]) -> ModelVersion:
        """Register a version (see `ModelVersionDraft`)."""
        return ModelVersion.model_validate(self._post(f"/models/{name}/versions", body))

    def add_model_base(self, ref: str, body: Mapping[str, Any]) -> ModelVersion:
        """Record one more base model of NAME:VERSION (see `BaseModelDraft`)."""
        name, version = _split_model_ref(ref)
        path = f"/models/{name}/versions/{version}/bases"
        return ModelVersion.model_validate(self._post(path, body))

    def model_ledger(self, ref: str) -> Ledger:
        """The compute and energy ledger of NAME:VERSION."""
        name, version = _split_model_ref(ref)
        return Ledger.model_validate(self._get(f"/models/{name}/versions/{version}/ledger"))

    def model_documentation(self, ref: str, fmt: str = "json") -> str:
        """The documentation of NAME:VERSION as `json`, `md` or `card` text."""
        name, version = _split_model_ref(ref)
        path = f"/api/v1/models/{name}/versions/{version}/documentation"
        return self.request("GET", path, params={"format": fmt}).text

    def set_model_documentation(
        self, ref: str, answers: Mapping[str, str | None]
    ) -> dict[str, str]:
        """The provider's answers to the documentation form (None removes one)."""
        name, version = _split_model_ref(ref)
        path = f"/api/v1/models/{name}/versions/{version}/documentation"
        result: dict[str, str] = self.request("PUT", path, json=dict(answers)).json()
        return result

    def report_job(
        self, job_id: int, mfu: float | None = None, tokens: int | None = None
    ) -> JobReport:
        """Report a job's model FLOP utilisation and/or training tokens processed."""
        body: dict[str, Any] = {"job_id": job_id}
        if mfu is not None:
            body["mfu"] = mfu
        if tokens is not None:
            body["tokens"] = tokens
        return JobReport.model_validate(self._post("/models/reports", body))

    def compute_projection(self, **params: Any) -> ComputeProjection:
        """Planned GPU-hours as FLOP against the AI Act lines: `proposal=`, `allocation=` or
        `gpu_hours=` (with `gpu_type=`), optionally `model=`, `mfu=`, `purpose=`."""
        return ComputeProjection.model_validate(self._get("/models/projection", params))

    def ai_act_rules(self) -> RulesOut:
        return RulesOut.model_validate(self._get("/models/rules"))

    # --- regulatory sandboxes -------------------------------------------------------------

    def sandbox(self, allocation_id: int) -> Sandbox:
        return Sandbox.model_validate(self._get(f"/allocations/{allocation_id}/sandbox"))

    def mark_sandbox(self, allocation_id: int, body: Mapping[str, Any]) -> Sandbox:
        """Mark an allocation as part of a sandbox (see `SandboxDraft`)."""
        response = self.request("PUT", f"/api/v1/allocations/{allocation_id}/sandbox", json=body)
        return Sandbox.model_validate(response.json())

    def file_sandbox_document(
        self, allocation_id: int, kind: str, text: str, media_type: str = "text/markdown"
    ) -> Sandbox:
        """File the sandbox `plan` or `exit-report` as text or Markdown."""
        response = self.request(
            "PUT",
            f"/api/v1/allocations/{allocation_id}/sandbox/{kind}",
            content=text.encode(),
            headers={"Content-Type": media_type},
        )
        return Sandbox.model_validate(response.json())

    def sandbox_document(self, allocation_id: int, kind: str) -> str:
        return self.request("GET", f"/api/v1/allocations/{allocation_id}/sandbox/{kind}").text

    # --- the expertise network ------------------------------------------------------------

    def skills(self) -> list[Skill]:
        return [Skill.model_validate(s) for s in self._get("/skills")]

    def experts(self, limit: int = 100, offset: int = 0, **filters: Any) -> Listing[Expert]:
        """The directory; filters: skill, hub, language, month, include_inactive."""
        return self._listing(Expert, "/experts", {"limit": limit, "offset": offset, **filters})

    def expert(self, expert_id: int) -> Expert:
        return Expert.model_validate(self._get(f"/experts/{expert_id}"))

    def create_expert(self, body: Mapping[str, Any]) -> Expert:
        """Add an expert (see `ExpertDraft`)."""
        return Expert.model_validate(self._post("/experts", body))

    def update_expert(self, expert_id: int, body: Mapping[str, Any]) -> Expert:
        """Change an expert (see `ExpertPatch`)."""
        response = self.request("PATCH", f"/api/v1/experts/{expert_id}", json=body)
        return Expert.model_validate(response.json())

    def expertise_requests(
        self, limit: int = 100, offset: int = 0, **filters: Any
    ) -> Listing[ExpertiseRequest]:
        """Requests for expertise; filters: hub, ticket_id, proposal_id."""
        params = {"limit": limit, "offset": offset, **filters}
        return self._listing(ExpertiseRequest, "/expertise-requests", params)

    def expertise_request(self, request_id: int) -> ExpertiseRequest:
        return ExpertiseRequest.model_validate(self._get(f"/expertise-requests/{request_id}"))

    def request_expertise(self, body: Mapping[str, Any]) -> ExpertiseRequest:
        """Ask for expertise (see `ExpertiseRequestDraft`)."""
        return ExpertiseRequest.model_validate(self._post("/expertise-requests", body))

    def expertise_matches(self, request_id: int, month: str | None = None) -> RequestMatches:
        body = self._get(f"/expertise-requests/{request_id}/matches", {"month": month})
        return RequestMatches.model_validate(body)

    def assign_expert(self, request_id: int, body: Mapping[str, Any]) -> ExpertiseRequest:
        """Assign an expert (see `AssignmentDraft`)."""
        found = self._post(f"/expertise-requests/{request_id}/assignments", body)
        return ExpertiseRequest.model_validate(found)

    def log_consultation(self, request_id: int, body: Mapping[str, Any]) -> ExpertiseRequest:
        """Log hours delivered (see `ConsultationDraft`)."""
        found = self._post(f"/expertise-requests/{request_id}/consultations", body)
        return ExpertiseRequest.model_validate(found)

    # --- the knowledge base -------------------------------------------------------------

    def kb_search(self, query: str, lang: str | None = None, limit: int = 10) -> list[Suggestion]:
        found = self._get("/kb/search", {"q": query, "lang": lang, "limit": limit})
        return [Suggestion.model_validate(s) for s in found]

    def kb_suggest(
        self, text: str, language: str | None = None, limit: int = 5
    ) -> list[Suggestion]:
        """Articles for a text being written, such as a ticket."""
        body = {"text": text, "language": language, "limit": limit}
        return [Suggestion.model_validate(s) for s in self._post("/kb/suggestions", body)]

    def kb_articles(
        self, limit: int = 100, offset: int = 0, lang: str | None = None
    ) -> Listing[ArticleSummary]:
        params = {"limit": limit, "offset": offset, "lang": lang}
        return self._listing(ArticleSummary, "/kb/articles", params)

    def kb_article(self, slug: str) -> Article:
        return Article.model_validate(self._get(f"/kb/articles/{slug}"))

    def kb_create_article(self, body: Mapping[str, Any]) -> Article:
        """Write an article (see `ArticleDraft`)."""
        return Article.model_validate(self._post("/kb/articles", body))

    def kb_update_article(self, slug: str, body: Mapping[str, Any]) -> Article:
        """Change an article (see `ArticlePatch`)."""
        response = self.request("PATCH", f"/api/v1/kb/articles/{slug}", json=body)
        return Article.model_validate(response.json())

    # --- AI systems and their risk classification ----------------------------------------

    def ai_systems(self, limit: int = 100, offset: int = 0, **filters: Any) -> Listing[AiSystem]:
        return self._listing(AiSystem, "/ai-systems", {"limit": limit, "offset": offset, **filters})

    def ai_system(self, ref: str) -> AiSystem:
        """One AI system by id or name."""
        return AiSystem.model_validate(self._get(f"/ai-systems/{ref}"))

    def register_ai_system(self, body: Mapping[str, Any]) -> AiSystem:
        """Register an AI system (see `AiSystemDraft`)."""
        return AiSystem.model_validate(self._post("/ai-systems", body))

    def classification(self, ref: str) -> Classification:
        """The system's current classification: answers so far, next question or result."""
        return Classification.model_validate(self._get(f"/ai-systems/{ref}/classification"))

    def answer_classification(self, ref: str, answers: Mapping[str, Any]) -> Classification:
        """Record answers by question id (yes-no, an option id, or option ids) and walk on."""
        body = self._post(f"/ai-systems/{ref}/classification/answers", {"answers": answers})
        return Classification.model_validate(body)

    def start_classification(self, ref: str) -> Classification:
        """Start a new classification of the system; earlier ones are kept."""
        response = self.request("POST", f"/api/v1/ai-systems/{ref}/classifications")
        return Classification.model_validate(response.json())

    # --- the support centre ---------------------------------------------------------------

    def support_categories(self) -> list[CategoryInfo]:
        return [CategoryInfo.model_validate(c) for c in self._get("/support/categories")]

    def open_ticket(self, body: Mapping[str, Any]) -> Ticket:
        """Open a support ticket (see `TicketDraft` for the fields)."""
        return Ticket.model_validate(self._post("/support/tickets", body))

    def tickets(self, limit: int = 100, offset: int = 0, **filters: Any) -> Listing[TicketSummary]:
        return self._listing(
            TicketSummary, "/support/tickets", {"limit": limit, "offset": offset, **filters}
        )

    def ticket(self, ticket_id: int) -> Ticket:
        return Ticket.model_validate(self._get(f"/support/tickets/{ticket_id}"))

    def reply_ticket(
        self, ticket_id: int, body: str, internal: bool = False, status: str | None = None
    ) -> Message:
        """Reply to a ticket, or leave an internal note (the staff handling it)."""
        draft: dict[str, Any] = {"body": body, "internal": internal}
        if status:
            draft["status"] = status
        return Message.model_validate(self._post(f"/support/tickets/{ticket_id}/messages", draft))

    def set_ticket_status(self, ticket_id: int, status: str, note: str | None = None) -> Ticket:
        body = self._post(f"/support/tickets/{ticket_id}/status", {"status": status, "note": note})
        return Ticket.model_validate(body)

    def hand_over_ticket(self, ticket_id: int, to: str, note: str | None = None) -> Ticket:
        body = self._post(f"/support/tickets/{ticket_id}/handover", {"to": to, "note": note})
        return Ticket.model_validate(body)

    def update_ticket(self, ticket_id: int, change: Mapping[str, Any]) -> Ticket:
        response = self.request("PATCH", f"/api/v1/support/tickets/{ticket_id}", json=change)
        return Ticket.model_validate(response.json())

    def attach_to_ticket(
        self, ticket_id: int, path: Path, media_type: str, internal: bool = False
    ) -> Attachment:
        """Attach a file to a ticket, its type given as `media_type`."""
        response = self.request(
            "POST",
            f"/api/v1/support/tickets/{ticket_id}/attachments",
            params={"name": path.name, "internal": internal},
            content=path.read_bytes(),
            headers={"Content-Type": media_type},
        )
        return Attachment.model_validate(response.json())

    def ticket_attachment(self, ticket_id: int, attachment_id: int) -> bytes:
        path = f"/api/v1/support/tickets/{ticket_id}/attachments/{attachment_id}"
        return self.request("GET", path).content

    def inbound_email(self, message: bytes) -> InboundResult:
        """Hand an e-mail from the support mailbox to the server (the central desk)."""
        response = self.request(
            "POST",
            "/api/v1/support/inbound",
            content=message,
            headers={"Content-Type": "message/rfc822"},
        )
        return InboundResult.model_validate(response.json())

    def support_report(self, hub: str | None = None, month: str | None = None) -> SupportReport:
        return SupportReport.model_validate(
            self._get("/support/report", {"hub": hub, "month": month})
        )


# Transfers of several GiB: the server may take a while after the last byte (fsync, commit).
_TRANSFER_TIMEOUT = httpx.Timeout(30.0, read=600.0, write=600.0)


def _split_model_ref(ref: str) -> tuple[str, str]:
    """NAME:VERSION as its two path segments (the server checks them)."""
    name, _, version = ref.partition(":")
    return name, version


def _api_error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
        return ApiError(response.status_code, str(body.get("detail")), body.get("errors"))
    except ValueError:
        return ApiError(response.status_code, f"{response.status_code} {response.reason_phrase}")
