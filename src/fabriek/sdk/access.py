"""Access to the factory: tracks, calls for proposals, proposals and their reviews, and
the allocations a decision grants, with their budgets and ledgers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fabriek.domain.access.allocations import Allocation, AllocationDraft, Charge
from fabriek.domain.access.calls import Call, CallDraft
from fabriek.domain.access.proposals import (
    AllocationSummary,
    DecisionDraft,
    Proposal,
    ProposalDraft,
    Review,
    ReviewSubmission,
)
from fabriek.sdk.core import Listing, SubClient


class AccessClient(SubClient):
    """`client.access`: from a call for proposals to a spent allocation."""

    def tracks(self) -> dict[str, Any]:
        """The configured access tracks and GPU-hour factors."""
        result: dict[str, Any] = self._core.get("/tracks")
        return result

    # --- calls --------------------------------------------------------------------------

    def calls(self, limit: int = 100, offset: int = 0, **filters: Any) -> Listing[Call]:
        """Calls for proposals; `open=True` keeps those open now, `track=` one track's."""
        return self._core.listing(Call, "/calls", {"limit": limit, "offset": offset, **filters})

    def call(self, ref: str) -> Call:
        """One call by code or number."""
        return Call.model_validate(self._core.get(f"/calls/{ref}"))

    def create_call(self, draft: CallDraft) -> Call:
        """Open a call (the access team)."""
        return Call.model_validate(self._core.post("/calls", draft))

    # --- proposals ----------------------------------------------------------------------

    def create_proposal(self, draft: ProposalDraft) -> Proposal:
        """Write a draft proposal."""
        return Proposal.model_validate(self._core.post("/proposals", draft))

    def proposals(
        self,
        limit: int = 100,
        offset: int = 0,
        states: Sequence[str] | None = None,
        **filters: Any,
    ) -> Listing[Proposal]:
        """The proposals one may see; filters: call, project."""
        params = {"limit": limit, "offset": offset, "state": list(states or []) or None, **filters}
        return self._core.listing(Proposal, "/proposals", params)

    def proposal(self, proposal_id: int) -> Proposal:
        """One proposal in full."""
        return Proposal.model_validate(self._core.get(f"/proposals/{proposal_id}"))

    def submit_proposal(self, proposal_id: int) -> Proposal:
        """Submit a draft to its call."""
        return Proposal.model_validate(self._core.post(f"/proposals/{proposal_id}/submit"))

    def withdraw_proposal(self, proposal_id: int) -> Proposal:
        """Withdraw a proposal before its decision."""
        return Proposal.model_validate(self._core.post(f"/proposals/{proposal_id}/withdraw"))

    def admin_check(self, proposal_id: int, passed: bool, note: str = "") -> Proposal:
        """Record the access team's administrative check."""
        body = {"passed": passed, "note": note}
        answer = self._core.post(f"/proposals/{proposal_id}/admin-check", body)
        return Proposal.model_validate(answer)

    def assign_reviewer(self, proposal_id: int, reviewer: str, kind: str) -> Review:
        """Ask a reviewer for a review of a kind (technical, scientific)."""
        body = {"reviewer": reviewer, "kind": kind}
        return Review.model_validate(self._core.post(f"/proposals/{proposal_id}/reviewers", body))

    def submit_review(self, proposal_id: int, submission: ReviewSubmission) -> Review:
        """Submit one's own review."""
        answer = self._core.post(f"/proposals/{proposal_id}/reviews", submission)
        return Review.model_validate(answer)

    def decide(self, proposal_id: int, decision: DecisionDraft) -> Proposal:
        """Decide a proposal; an award creates its allocation."""
        answer = self._core.post(f"/proposals/{proposal_id}/decision", decision)
        return Proposal.model_validate(answer)

    def reviews(self, limit: int = 100, offset: int = 0, pending: bool = False) -> Listing[Review]:
        """The reviews assigned to the signed-in user."""
        params = {"limit": limit, "offset": offset, "pending": pending or None}
        return self._core.listing(Review, "/reviews", params)

    # --- allocations and budgets --------------------------------------------------------

    def allocations(
        self,
        limit: int = 100,
        offset: int = 0,
        project: str | None = None,
        active: bool | None = None,
    ) -> Listing[Allocation]:
        """Allocations of the caller's projects, each with its budget now."""
        params = {"limit": limit, "offset": offset, "project": project, "active": active}
        return self._core.listing(Allocation, "/allocations", params)

    def allocation(self, allocation_id: int) -> Allocation:
        """One allocation with its budget now."""
        return Allocation.model_validate(self._core.get(f"/allocations/{allocation_id}"))

    def charges(self, allocation_id: int) -> list[Charge]:
        """The allocation's ledger: one line per job run charged to it."""
        return self._core.items(Charge, f"/allocations/{allocation_id}/charges")

    def create_allocation(self, draft: AllocationDraft) -> Allocation:
        """Grant an allocation directly, outside a call (the access team)."""
        return Allocation.model_validate(self._core.post("/allocations", draft))

    def file_final_report(self, allocation_id: int, report: str) -> AllocationSummary:
        """File the final report an allocation owes when it ends."""
        path = f"/allocations/{allocation_id}/final-report"
        return AllocationSummary.model_validate(self._core.post(path, {"report": report}))
