"""Calls for proposals: when a call takes proposals, a new call, and a call as shown."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fabriek.domain.sites import Slug


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M %Z").strip()


def call_open_problem(
    code: str, opens_at: datetime, closes_at: datetime | None, now: datetime
) -> str | None:
    """Why call `code` takes no proposals at `now` (naming its dates), or None when open.

    A call is open from `opens_at` (included) up to its cut-off `closes_at` (excluded); a
    call without a cut-off stays open (continuous tracks such as Fast Lane)."""
    if now < opens_at:
        return f"call {code} is not open yet: it opens at {_when(opens_at)}"
    if closes_at is not None and now >= closes_at:
        return (
            f"call {code} is closed: its cut-off was {_when(closes_at)} "
            f"(open from {_when(opens_at)})"
        )
    return None


def is_open(opens_at: datetime, closes_at: datetime | None, now: datetime) -> bool:
    """Whether a call with these dates takes proposals at `now`."""
    return call_open_problem("", opens_at, closes_at, now) is None


class CallDraft(BaseModel):
    """A new call for proposals on one track."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: Slug = Field(description="short unique name, e.g. large-scale-2026-03")
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)
    track: str = Field(min_length=1, max_length=40, description="a configured track's code")
    opens_at: datetime = Field(description="when proposals may first be submitted")
    closes_at: datetime | None = Field(
        default=None, description="the cut-off; none for a continuously open call"
    )

    @model_validator(mode="after")
    def _dates(self) -> CallDraft:
        for name in ("opens_at", "closes_at"):
            moment = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                raise ValueError(f"{name} needs a time zone, e.g. 2026-03-01T12:00:00+01:00")
        if self.closes_at is not None and self.closes_at <= self.opens_at:
            raise ValueError("closes_at (the cut-off) must be after opens_at")
        return self


class Call(BaseModel):
    """A call as shown: its dates and whether it is open now."""

    id: int
    code: str
    title: str
    description: str
    track: str
    track_name: str
    opens_at: datetime
    closes_at: datetime | None
    open: bool = Field(description="whether it takes proposals now")
    created_at: datetime
