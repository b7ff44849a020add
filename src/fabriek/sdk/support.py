"""The support centre: tickets and their conversation, the network of experts and
requests for expertise, and the knowledge base."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fabriek.domain.support.expertise import (
    AssignmentDraft,
    ConsultationDraft,
    Expert,
    ExpertDraft,
    ExpertiseRequest,
    ExpertiseRequestDraft,
    ExpertPatch,
    Skill,
)
from fabriek.domain.support.knowledge import (
    Article,
    ArticleDraft,
    ArticlePatch,
    ArticleSummary,
    Suggestion,
)
from fabriek.domain.support.matching import RequestMatches
from fabriek.domain.support.report import SupportReport
from fabriek.domain.support.shapes import (
    Attachment,
    CategoryInfo,
    InboundResult,
    Message,
    Ticket,
    TicketChange,
    TicketDraft,
    TicketSummary,
)
from fabriek.sdk.core import Listing, SubClient


class SupportClient(SubClient):
    """`client.support`: help from one's AI hub, the central desk and the experts."""

    # --- tickets ------------------------------------------------------------------------

    def categories(self) -> list[CategoryInfo]:
        """The categories a ticket can be filed under, and where each is routed."""
        return self._core.items(CategoryInfo, "/support/categories")

    def open_ticket(self, draft: TicketDraft) -> Ticket:
        """Open a support ticket."""
        return Ticket.model_validate(self._core.post("/support/tickets", draft))

    def tickets(self, limit: int = 100, offset: int = 0, **filters: Any) -> Listing[TicketSummary]:
        """The tickets one may see; filters: status, queue, mine."""
        params = {"limit": limit, "offset": offset, **filters}
        return self._core.listing(TicketSummary, "/support/tickets", params)

    def ticket(self, ticket_id: int) -> Ticket:
        """One ticket with its conversation."""
        return Ticket.model_validate(self._core.get(f"/support/tickets/{ticket_id}"))

    def reply(
        self, ticket_id: int, body: str, internal: bool = False, status: str | None = None
    ) -> Message:
        """Reply to a ticket, or leave an internal note (the staff handling it)."""
        draft: dict[str, Any] = {"body": body, "internal": internal}
        if status:
            draft["status"] = status
        answer = self._core.post(f"/support/tickets/{ticket_id}/messages", draft)
        return Message.model_validate(answer)

    def set_status(self, ticket_id: int, status: str, note: str | None = None) -> Ticket:
        """Move a ticket on (triaged, waiting-for-user, resolved, closed)."""
        body = {"status": status, "note": note}
        return Ticket.model_validate(self._core.post(f"/support/tickets/{ticket_id}/status", body))

    def hand_over(self, ticket_id: int, to: str, note: str | None = None) -> Ticket:
        """Hand a ticket to another hub's desk or the central desk."""
        body = {"to": to, "note": note}
        answer = self._core.post(f"/support/tickets/{ticket_id}/handover", body)
        return Ticket.model_validate(answer)

    def update_ticket(self, ticket_id: int, change: TicketChange) -> Ticket:
        """Change a ticket's priority and/or category."""
        answer = self._core.send("PATCH", f"/support/tickets/{ticket_id}", change)
        return Ticket.model_validate(answer)

    def attach(
        self, ticket_id: int, path: Path, media_type: str, internal: bool = False
    ) -> Attachment:
        """Attach a file to a ticket, its type given as `media_type`."""
        response = self._core.request(
            "POST",
            f"/support/tickets/{ticket_id}/attachments",
            params={"name": path.name, "internal": internal},
            content=path.read_bytes(),
            headers={"Content-Type": media_type},
        )
        return Attachment.model_validate(response.json())

    def attachment(self, ticket_id: int, attachment_id: int) -> bytes:
        """An attachment's bytes."""
        path = f"/support/tickets/{ticket_id}/attachments/{attachment_id}"
        return self._core.request("GET", path).content

    def inbound_email(self, message: bytes) -> InboundResult:
        """Hand an e-mail from the support mailbox to the server (the central desk)."""
        response = self._core.request(
            "POST",
            "/support/inbound",
            content=message,
            headers={"Content-Type": "message/rfc822"},
        )
        return InboundResult.model_validate(response.json())

    def report(self, hub: str | None = None, month: str | None = None) -> SupportReport:
        """A month of support at a hub (or all): volumes, answer times, service levels."""
        answer = self._core.get("/support/report", {"hub": hub, "month": month})
        return SupportReport.model_validate(answer)

    # --- the expertise network ----------------------------------------------------------

    def skills(self) -> list[Skill]:
        """The skills experts are listed under."""
        return self._core.items(Skill, "/skills")

    def experts(self, limit: int = 100, offset: int = 0, **filters: Any) -> Listing[Expert]:
        """The directory; filters: skill, hub, language, month, include_inactive."""
        params = {"limit": limit, "offset": offset, **filters}
        return self._core.listing(Expert, "/experts", params)

    def expert(self, expert_id: int) -> Expert:
        """One expert."""
        return Expert.model_validate(self._core.get(f"/experts/{expert_id}"))

    def create_expert(self, draft: ExpertDraft) -> Expert:
        """Add an expert to the directory."""
        return Expert.model_validate(self._core.post("/experts", draft))

    def update_expert(self, expert_id: int, patch: ExpertPatch) -> Expert:
        """Change an expert."""
        return Expert.model_validate(self._core.send("PATCH", f"/experts/{expert_id}", patch))

    def expertise_requests(
        self, limit: int = 100, offset: int = 0, **filters: Any
    ) -> Listing[ExpertiseRequest]:
        """Requests for expertise; filters: hub, ticket_id, proposal_id."""
        params = {"limit": limit, "offset": offset, **filters}
        return self._core.listing(ExpertiseRequest, "/expertise-requests", params)

    def expertise_request(self, request_id: int) -> ExpertiseRequest:
        """One request for expertise with its assignments and hours."""
        answer = self._core.get(f"/expertise-requests/{request_id}")
        return ExpertiseRequest.model_validate(answer)

    def request_expertise(self, draft: ExpertiseRequestDraft) -> ExpertiseRequest:
        """Ask for expertise."""
        return ExpertiseRequest.model_validate(self._core.post("/expertise-requests", draft))

    def expertise_matches(self, request_id: int, month: str | None = None) -> RequestMatches:
        """The experts who fit a request, best first, with their hours free that month."""
        answer = self._core.get(f"/expertise-requests/{request_id}/matches", {"month": month})
        return RequestMatches.model_validate(answer)

    def assign_expert(self, request_id: int, draft: AssignmentDraft) -> ExpertiseRequest:
        """Assign an expert to a request for some hours."""
        answer = self._core.post(f"/expertise-requests/{request_id}/assignments", draft)
        return ExpertiseRequest.model_validate(answer)

    def log_consultation(self, request_id: int, draft: ConsultationDraft) -> ExpertiseRequest:
        """Log hours an assigned expert delivered."""
        answer = self._core.post(f"/expertise-requests/{request_id}/consultations", draft)
        return ExpertiseRequest.model_validate(answer)

    # --- the knowledge base -------------------------------------------------------------

    def search_articles(
        self, query: str, lang: str | None = None, limit: int = 10
    ) -> list[Suggestion]:
        """Articles that answer a search, best first."""
        found = self._core.get("/kb/search", {"q": query, "lang": lang, "limit": limit})
        return [Suggestion.model_validate(s) for s in found]

    def suggest_articles(
        self, text: str, language: str | None = None, limit: int = 5
    ) -> list[Suggestion]:
        """Articles for a text being written, such as a ticket."""
        body = {"text": text, "language": language, "limit": limit}
        return [Suggestion.model_validate(s) for s in self._core.post("/kb/suggestions", body)]

    def articles(
        self, limit: int = 100, offset: int = 0, lang: str | None = None
    ) -> Listing[ArticleSummary]:
        """The knowledge base's articles."""
        params = {"limit": limit, "offset": offset, "lang": lang}
        return self._core.listing(ArticleSummary, "/kb/articles", params)

    def article(self, slug: str) -> Article:
        """One article in full."""
        return Article.model_validate(self._core.get(f"/kb/articles/{slug}"))

    def create_article(self, draft: ArticleDraft) -> Article:
        """Write an article."""
        return Article.model_validate(self._core.post("/kb/articles", draft))

    def update_article(self, slug: str, patch: ArticlePatch) -> Article:
        """Change an article."""
        return Article.model_validate(self._core.send("PATCH", f"/kb/articles/{slug}", patch))
