"""What an operator sees of a site's agent, and what a person sees of their own POSIX
identity: the API's answers, shared with the SDK and the CLI."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class ChangeOut(BaseModel):
    """One change an agent made, found made by hand (drift), or could not make."""

    model_config = ConfigDict(frozen=True)

    kind: str
    name: str
    detail: str


class ReportOut(BaseModel):
    """One report of the agent: the desired state it answered and what it did."""

    model_config = ConfigDict(frozen=True)

    id: int
    generation: str
    received_at: datetime
    applied: list[ChangeOut] = Field(default_factory=list)
    drift: list[ChangeOut] = Field(default_factory=list)
    errors: list[ChangeOut] = Field(default_factory=list)


class AgentStatus(BaseModel):
    """A site's agent as its operator sees it. `in_step`: its latest report answered the
    state the site should have now, without errors."""

    model_config = ConfigDict(frozen=True)

    site: str
    has_token: bool
    last_seen_at: datetime | None
    generation: str = Field(description="the generation of the site's desired state now")
    applied_generation: str | None = Field(
        description="the generation the agent's latest report answered"
    )
    in_step: bool
    drift: list[ChangeOut] = Field(
        default_factory=list, description="changes made by hand that the latest report found"
    )
    errors: list[ChangeOut] = Field(
        default_factory=list, description="what the latest report could not do"
    )
    reports: list[ReportOut] = Field(default_factory=list, description="the latest, newest first")


class PosixAccountOut(BaseModel):
    """A person's POSIX identity, the same on every site."""

    model_config = ConfigDict(frozen=True)

    username: str
    uid: int
    gid: int = Field(description="their own primary group's GID, equal to their UID")
    groups: list[PosixGroupOut] = Field(
        default_factory=list, description="the groups of their projects (Slurm accounts)"
    )


class PosixGroupOut(BaseModel):
    """A project's POSIX group, which is also its Slurm account."""

    model_config = ConfigDict(frozen=True)

    project: str
    name: str
    gid: int


PosixAccountOut.model_rebuild()
