"""Notifications: the kinds there are, how a person wants them e-mailed, and the shapes the
services and the API exchange."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class NotificationKind(StrEnum):
    """What a notification is about; each kind can be muted (not e-mailed) per person."""

    # An allocation's members: 50, 80 or 100 % of its GPU-hours used.
    BUDGET_USED = "budget-used"
    # An allocation's members: 30, 14 or 7 days before it ends.
    ALLOCATION_ENDING = "allocation-ending"
    # Those who run a track (access team, the hub): a proposal came in.
    PROPOSAL_SUBMITTED = "proposal-submitted"
    # A project's members: their proposal was decided, or failed the administrative check.
    PROPOSAL_DECIDED = "proposal-decided"
    # A reviewer: a review was assigned to them.
    REVIEW_ASSIGNED = "review-assigned"
    # The access team: a proposal broke its track's turnaround promise.
    TURNAROUND_BREACH = "turnaround-breach"
    # A project's members: a job submitted for one of its AI models is projected to take
    # the model past an EU AI Act compute line (1e23, one third of a base, 1e25 ...).
    AI_ACT_THRESHOLD = "ai-act-threshold"
    # The staff of a support desk: a ticket reached their desk (new, or handed over).
    SUPPORT_TICKET = "support-ticket"
    # The staff handling a ticket: the user replied (in the portal, the API or by e-mail).
    SUPPORT_REPLY = "support-reply"
    # The desk's staff and the central desk: a ticket broke its service level.
    SUPPORT_BREACH = "support-breach"
    # A job's owner: their notebook was stopped after a time without activity.
    NOTEBOOK_IDLE = "notebook-idle"


class Delivery(StrEnum):
    """How notifications reach a person by e-mail (all of them are listed in the portal)."""

    # At most one e-mail a day, gathering everything new since the last one: the default.
    DIGEST = "digest"
    # One e-mail per notification, at the next housekeeping round.
    IMMEDIATE = "immediate"
    # No e-mail at all.
    NONE = "none"


class Notification(BaseModel):
    """One message to one person."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    subject: str
    body: str
    link: str | None = None
    created_at: datetime
    read_at: datetime | None = None
    emailed_at: datetime | None = Field(
        default=None, description="when e-mail handled it (sent, or skipped as muted)"
    )


class NotificationSettings(BaseModel):
    """A person's e-mail preferences, with the kinds there are to mute."""

    delivery: Delivery
    muted: list[str]
    kinds: list[str] = Field(description="every kind of notification, for muting")
    email: str = Field(description="where e-mail goes")
    last_digest_at: datetime | None = None


class NotificationSettingsUpdate(BaseModel):
    """A change to one's preferences; a field left out stays as it is. Values are checked by
    the service so a wrong one is answered with the allowed ones."""

    model_config = ConfigDict(extra="forbid")

    delivery: str | None = Field(default=None, description="digest, immediate or none")
    muted: list[str] | None = Field(
        default=None, max_length=50, description="the kinds not to e-mail (replaces the list)"
    )


class MarkedRead(BaseModel):
    """How many notifications were marked read."""

    marked: int
