"""The shapes the support services and the API exchange: drafts and changes coming in,
tickets, messages, attachments and context going out."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from fabriek.domain.support.tickets import Category, Priority, Status


class TicketDraft(BaseModel):
    """A new ticket, as the user writes it."""

    model_config = ConfigDict(extra="forbid")

    subject: str = Field(min_length=3, max_length=200)
    body: str = Field(default="", max_length=50_000, description="the question, in Markdown")
    category: str = Field(
        description="access-and-proposals, jobs-and-software, data-and-privacy, ai-act, "
        "energy-and-sustainability, onboarding or other (or its first word: jobs, data, ...)"
    )
    priority: str = Field(default="normal", description="low, normal, high or urgent")
    about: str | None = Field(
        default=None, description="job:ID, proposal:ID or dataset:PROJECT/NAME of your projects"
    )
    project: str | None = Field(
        default=None, description="one of your projects, so its members see the ticket too"
    )
    share_context: bool = Field(
        default=False,
        description="consent to attach what Fabriek knows of `about`: a job's state, reason, "
        "site, last log lines and its allocation's budget",
    )


class MessageDraft(BaseModel):
    """A reply to a ticket, or an internal note for the staff handling it."""

    model_config = ConfigDict(extra="forbid")

    body: str = Field(min_length=1, max_length=50_000)
    internal: bool = Field(
        default=False, description="a note for the handling staff only, never shown or mailed"
    )
    status: str | None = Field(
        default=None, description="move the ticket on with the reply (staff), e.g. resolved"
    )


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: str = Field(description="triaged, waiting-for-user, resolved or closed")
    note: str | None = Field(default=None, max_length=2000)


class Handover(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(description="a hub's code (brightlands, ...) or central")
    note: str | None = Field(default=None, max_length=2000, description="why, for the next desk")


class TicketChange(BaseModel):
    """Triage: a new priority or category (a field left out stays as it is)."""

    model_config = ConfigDict(extra="forbid")

    priority: str | None = None
    category: str | None = None


class JobContext(BaseModel):
    id: int
    name: str | None
    project: str
    state: str
    reason: str | None
    site: str | None
    exit_code: int | None
    gpus: int
    gpu_type: str | None
    submitted_at: datetime
    started_at: datetime | None
    ended_at: datetime | None


class BudgetContext(BaseModel):
    """The allocation a job was charged to, in normalised GPU-hours, when the ticket opened."""

    allocation_id: int
    track: str
    awarded_gpu_hours: float
    consumed_gpu_hours: float
    committed_gpu_hours: float
    remaining_gpu_hours: float
    ends_at: datetime


class ProposalContext(BaseModel):
    id: int
    title: str
    state: str
    call: str
    track: str
    submitted_at: datetime | None
    decided_at: datetime | None


class DatasetContext(BaseModel):
    project: str
    name: str
    classification: str
    residency: str
    versions: int


class TicketContext(BaseModel):
    """What Fabriek attached, with the user's consent, when the ticket was opened."""

    captured_at: datetime
    job: JobContext | None = None
    log_lines: list[str] = Field(
        default_factory=list, description="the job's last lines of standard output"
    )
    error_lines: list[str] = Field(
        default_factory=list, description="the job's last lines of standard error"
    )
    budget: BudgetContext | None = None
    proposal: ProposalContext | None = None
    dataset: DatasetContext | None = None


class ServiceLevelView(BaseModel):
    first_answer_working_days: int
    first_answer_due: datetime
    first_answer_at: datetime | None
    first_answer_breached: bool
    resolution_working_days: int
    resolution_due: datetime
    resolved_at: datetime | None
    resolution_breached: bool
    paused_working_days: int
    escalated_at: datetime | None = Field(description="when the breach was escalated (once)")


class Message(BaseModel):
    id: int
    author: str | None = Field(description="username; None for the system")
    author_name: str
    staff: bool = Field(description="written by the staff handling the ticket")
    internal: bool
    via: str = Field(description="api or email")
    body: str
    created_at: datetime


class Attachment(BaseModel):
    id: int
    name: str
    media_type: str
    size_bytes: int
    sha256: str
    internal: bool
    uploaded_by: str
    uploaded_at: datetime


class TicketEvent(BaseModel):
    """A step in the ticket's history: a status change, a handover, a triage, a breach."""

    at: datetime
    kind: str
    by: str | None
    from_value: str | None
    to_value: str | None
    note: str | None


class TicketSummary(BaseModel):
    id: int
    reference: str = Field(description="T42")
    subject: str
    category: Category
    priority: Priority
    status: Status
    queue: str = Field(description="the hub's code, or central")
    queue_name: str
    author: str
    project: str | None
    about: str | None
    created_at: datetime
    updated_at: datetime
    first_answer_due: datetime
    resolution_due: datetime
    breached: bool = Field(description="a service level is broken")


class Ticket(TicketSummary):
    """One ticket as the caller may see it: internal notes and internal attachments appear
    only to the staff handling it."""

    body: str
    sector: str | None = Field(description="the kind of the author's organisation")
    organisation: str | None
    share_context: bool
    context: TicketContext | None
    service_level: ServiceLevelView
    messages: list[Message]
    attachments: list[Attachment]
    history: list[TicketEvent]
    handling: bool = Field(description="the caller handles this ticket (staff)")
    reply_address: str | None = Field(description="e-mail replies to this address join the ticket")


class CategoryInfo(BaseModel):
    code: Category
    name: str
    owner: str = Field(description="central, or hub: the hub of the user's province")
    first_answer_working_days: int
    resolution_working_days: int


class InboundResult(BaseModel):
    """What became of an e-mail piped in: added to a ticket, bounced to its sender (with the
    reason), a duplicate of one already added, or ignored (automatic mail: no bounce loops)."""

    outcome: str = Field(description="added, bounced, duplicate or ignored")
    ticket: str | None
    reason: str
