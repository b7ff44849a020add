"""AI regulatory sandboxes (EU AI Act Art. 57-58): an allocation can be part of one, run by
a member state's competent authority, with its sandbox plan and exit report kept as
documents. The shapes the services and the API exchange; no I/O."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fabriek.domain.access.tracks import EU_EEA

# What a document may be filed as: plain text or Markdown, UTF-8.
MEDIA_TYPES = ("text/markdown", "text/plain")
MAX_DOCUMENT_BYTES = 1_000_000


class DocumentKind(StrEnum):
    # Agreed with the authority before testing starts (Art. 57(5), 58(2)(b)).
    PLAN = "plan"
    # The authority's written proof of the activities carried out and their results
    # (Art. 57(7)); filed here when the allocation leaves the sandbox.
    EXIT_REPORT = "exit-report"


class SandboxDraft(BaseModel):
    """Mark an allocation as part of a national AI regulatory sandbox."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    authority: str = Field(
        min_length=2, max_length=200, description="the national competent authority running it"
    )
    member_state: str = Field(default="NL", description="ISO 3166-1 alpha-2, e.g. NL")
    reference: str | None = Field(
        default=None, max_length=100, description="the authority's reference for it"
    )

    @field_validator("member_state")
    @classmethod
    def _state(cls, value: str) -> str:
        code = value.strip().upper()
        if code not in EU_EEA:
            raise ValueError(f"{value!r} is not an EU or EEA member state code such as NL")
        return code


class SandboxDocumentInfo(BaseModel):
    kind: DocumentKind
    media_type: str
    bytes: int
    filed_by: str
    filed_at: datetime
    versions: int = Field(description="how many times this kind was filed; the newest counts")


class Sandbox(BaseModel):
    allocation_id: int
    project: str
    authority: str
    member_state: str
    reference: str | None
    marked_by: str
    created_at: datetime
    documents: list[SandboxDocumentInfo]
    exited: bool = Field(description="an exit report is filed")
