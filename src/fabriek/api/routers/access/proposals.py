"""Proposals on their path (draft → submitted → under review → decided), the reviews of the
signed-in reviewer, and final reports on allocations. Proposals the caller may not see
answer 404."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from fabriek.api.context import Caller, Ctx, Db
from fabriek.api.routers import API_PREFIX
from fabriek.api.schemas import PageOut, paging
from fabriek.domain.access.proposals import (
    AdminCheck,
    AllocationSummary,
    DecisionDraft,
    FinalReportDraft,
    Proposal,
    ProposalDraft,
    ProposalState,
    Review,
    ReviewerAssignment,
    ReviewSubmission,
)
from fabriek.services.access import proposals, reviewing
from fabriek.services.paging import PageRequest

router = APIRouter(prefix=API_PREFIX)


@router.post(
    "/proposals", response_model=Proposal, status_code=status.HTTP_201_CREATED, tags=["proposals"]
)
def create_proposal(body: ProposalDraft, db: Db, ctx: Ctx, who: Caller) -> Proposal:
    """Write a draft proposal for one of your projects to an open call. Eligibility, size
    (normalised GPU-h against the track's limits), duration and residency are checked now;
    submit it with `POST /proposals/{id}/submit`."""
    return proposals.create_proposal(db, who, body, ctx.access, ctx.clock())


@router.get("/proposals", response_model=PageOut[Proposal], tags=["proposals"])
def list_proposals(
    db: Db,
    ctx: Ctx,
    who: Caller,
    page: Annotated[PageRequest, Depends(paging)],
    state: Annotated[list[ProposalState] | None, Query(description="repeat for several")] = None,
    call: Annotated[str | None, Query(max_length=63, description="call code or id")] = None,
    project: Annotated[str | None, Query(max_length=63, description="project name or id")] = None,
) -> PageOut[Proposal]:
    """The proposals you may see, newest first, each with its turnaround clock."""
    return PageOut.of(
        proposals.list_proposals(db, who, page, ctx.access, ctx.clock(), state, call, project)
    )


@router.get("/proposals/{proposal_id}", response_model=Proposal, tags=["proposals"])
def get_proposal(proposal_id: int, db: Db, ctx: Ctx, who: Caller) -> Proposal:
    """One proposal: its turnaround clock (started, due, working days promised and used,
    breached) and the reviews you may read."""
    return proposals.get_proposal(db, who, proposal_id, ctx.access, ctx.clock())


@router.post("/proposals/{proposal_id}/submit", response_model=Proposal, tags=["proposals"])
def submit_proposal(proposal_id: int, db: Db, ctx: Ctx, who: Caller) -> Proposal:
    """Submit a draft (the project's members). Refused when the call has closed, the rules
    no longer hold, or the organisation has an overdue final report."""
    return proposals.submit_proposal(db, who, proposal_id, ctx.access, ctx.clock())


@router.post("/proposals/{proposal_id}/withdraw", response_model=Proposal, tags=["proposals"])
def withdraw_proposal(proposal_id: int, db: Db, ctx: Ctx, who: Caller) -> Proposal:
    """Withdraw a proposal not yet decided (its author or the project's PI)."""
    return proposals.withdraw_proposal(db, who, proposal_id, ctx.access, ctx.clock())


@router.post("/proposals/{proposal_id}/admin-check", response_model=Proposal, tags=["proposals"])
def admin_check(proposal_id: int, body: AdminCheck, db: Db, ctx: Ctx, who: Caller) -> Proposal:
    """The administrative check (the access team): passed, the proposal goes to review;
    failed, with a note, it is rejected."""
    return reviewing.admin_check(db, who, proposal_id, body, ctx.access, ctx.clock())


@router.post(
    "/proposals/{proposal_id}/reviewers",
    response_model=Review,
    status_code=status.HTTP_201_CREATED,
    tags=["proposals"],
)
def assign_reviewer(
    proposal_id: int, body: ReviewerAssignment, db: Db, ctx: Ctx, who: Caller
) -> Review:
    """Assign a reviewer (the access team): `technical` to site staff, `scientific` (or
    business) to a reviewer. Nobody from the applicant's organisation or project."""
    return reviewing.assign_reviewer(db, who, proposal_id, body, ctx.access, ctx.clock())


@router.post("/proposals/{proposal_id}/reviews", response_model=Review, tags=["proposals"])
def submit_review(
    proposal_id: int, body: ReviewSubmission, db: Db, ctx: Ctx, who: Caller
) -> Review:
    """Submit your own review: a score of 1-5 and a comment, with `feasible` for a
    technical review; or declare a conflict of interest (`conflict`), and it does not count."""
    return reviewing.submit_review(db, who, proposal_id, body, ctx.clock())


@router.post("/proposals/{proposal_id}/decision", response_model=Proposal, tags=["proposals"])
def decide(proposal_id: int, body: DecisionDraft, db: Db, ctx: Ctx, who: Caller) -> Proposal:
    """Decide (the access team; for a hub-run track also the applicant's hub): `award`
    (what was asked unless `awarded` says otherwise), `partial` or `reject`. Partial awards,
    rejections and awarding more than asked need a `reason`. An award creates the
    allocation."""
    return reviewing.decide(db, who, proposal_id, body, ctx.access, ctx.clock())


@router.get("/reviews", response_model=PageOut[Review], tags=["proposals"])
def my_reviews(
    db: Db,
    who: Caller,
    page: Annotated[PageRequest, Depends(paging)],
    pending: Annotated[bool, Query(description="only those not yet submitted")] = False,
) -> PageOut[Review]:
    """The reviews you are assigned, newest first."""
    return PageOut.of(reviewing.list_my_reviews(db, who, page, pending))


@router.post(
    "/allocations/{allocation_id}/final-report",
    response_model=AllocationSummary,
    tags=["allocations"],
)
def file_final_report(
    allocation_id: int, body: FinalReportDraft, db: Db, ctx: Ctx, who: Caller
) -> AllocationSummary:
    """File an allocation's final report (the project's PI); due two months after the
    allocation ends. An organisation with an overdue report cannot submit proposals."""
    return proposals.file_final_report(db, who, allocation_id, body, ctx.clock())
