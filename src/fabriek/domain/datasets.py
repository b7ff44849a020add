"""Datasets: registered data, its terms (classification, legal basis, residency, retention),
its immutable versions and the grants that let other projects read it.

Pure values and rules: no I/O, no clock. The rules a job will need later live here too:
`residency_allows` says whether a site may hold a dataset's plaintext, and why not.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fabriek.domain.dataset_names import name_problem

DESCRIPTION_MAX_CHARS = 4000
GIB = 1024**3
MIB = 1024**2


class Classification(StrEnum):
    """How sensitive the data is; the personal classes fall under the GDPR."""

    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    PERSONAL = "personal"
    # GDPR art. 9: health, ethnicity, religion, biometrics, sexual orientation, ...
    SPECIAL_CATEGORY = "special-category"

    @property
    def is_personal(self) -> bool:
        return self in PERSONAL_CLASSES


PERSONAL_CLASSES = frozenset({Classification.PERSONAL, Classification.SPECIAL_CATEGORY})


class Residency(StrEnum):
    """Where the data (and any job reading it) may be: the Netherlands only, the EU/EEA only,
    or anywhere."""

    NL = "nl"
    EU = "eu"
    ANYWHERE = "anywhere"


class LegalBasis(StrEnum):
    """The lawful basis for processing personal data (GDPR art. 6(1))."""

    CONSENT = "consent"
    CONTRACT = "contract"
    LEGAL_OBLIGATION = "legal-obligation"
    VITAL_INTERESTS = "vital-interests"
    PUBLIC_TASK = "public-task"
    LEGITIMATE_INTERESTS = "legitimate-interests"


class SpecialCategoryCondition(StrEnum):
    """The exception that allows processing special-category data (GDPR art. 9(2))."""

    EXPLICIT_CONSENT = "explicit-consent"
    EMPLOYMENT = "employment"
    VITAL_INTERESTS = "vital-interests"
    NOT_FOR_PROFIT = "not-for-profit"
    MADE_PUBLIC = "made-public"
    LEGAL_CLAIMS = "legal-claims"
    SUBSTANTIAL_PUBLIC_INTEREST = "substantial-public-interest"
    HEALTH_CARE = "health-care"
    PUBLIC_HEALTH = "public-health"
    RESEARCH = "research"


class Access(StrEnum):
    """Why the caller sees a dataset: their project owns it, holds a grant, or they are admin."""

    OWNER = "owner"
    GRANTED = "granted"
    ADMIN = "admin"


# --- rules -------------------------------------------------------------------------------------


def terms_problems(
    classification: Classification,
    legal_basis: LegalBasis | None,
    purpose: str | None,
    retention_until: date | None,
    special_condition: SpecialCategoryCondition | None,
) -> list[tuple[str, str]]:
    """What the GDPR asks of a dataset's terms that is missing: (field, message) pairs.

    Personal data needs a lawful basis, a stated purpose and an end to its retention
    (art. 5(1)(b) and (e), art. 6); special-category data also an art. 9(2) exception.
    """
    problems: list[tuple[str, str]] = []
    if classification.is_personal:
        if legal_basis is None:
            problems.append(("legal_basis", f"{classification} data needs a legal basis"))
        if not (purpose or "").strip():
            problems.append(("purpose", f"{classification} data needs a stated purpose"))
        if retention_until is None:
            problems.append(
                ("retention_until", f"{classification} data needs a retention end date")
            )
    if classification is Classification.SPECIAL_CATEGORY and special_condition is None:
        problems.append(
            ("special_category_condition", "special-category data needs a GDPR art. 9(2) condition")
        )
    if classification is not Classification.SPECIAL_CATEGORY and special_condition is not None:
        problems.append(
            (
                "special_category_condition",
                "only special-category data takes an art. 9(2) condition",
            )
        )
    return problems


EU_JURISDICTIONS = frozenset({"nl", "eu"})


def residency_allows(
    residency: Residency, site_jurisdiction: str | None, gdpr_ready: bool, *, personal: bool
) -> str | None:
    """Why a site may not hold a dataset's plaintext, or None when it may.

    `site_jurisdiction` is the site's ("nl", "eu"; anything else is outside the EU/EEA);
    personal data (`personal`) also needs a site marked GDPR-ready.
    """
    where = (site_jurisdiction or "").lower() or "unknown"
    if residency is Residency.NL and where != "nl":
        return f"the data must stay in the Netherlands (residency nl); the site is under {where}"
    if residency is Residency.EU and where not in EU_JURISDICTIONS:
        return f"the data must stay in the EU/EEA (residency eu); the site is under {where}"
    if personal and not gdpr_ready:
        return "personal data needs a site marked GDPR-ready; this site is not"
    return None


def quota_refusal(
    project: str, used_bytes: int, incoming_bytes: int, quota_bytes: int, *, so_far: bool = False
) -> str | None:
    """Why a project may not store `incoming_bytes` more, or None when it fits its quota.
    `so_far`: the upload is still arriving, and `incoming_bytes` is what came until now."""
    if used_bytes + incoming_bytes <= quota_bytes:
        return None
    needs = "needs at least" if so_far else "needs"
    return (
        f"project {project} may hold {human_bytes(quota_bytes)} of datasets; it holds "
        f"{human_bytes(used_bytes)} and this upload {needs} {human_bytes(incoming_bytes)} more; "
        "nothing was kept: delete old versions or ask the operator for a larger quota"
    )


def human_bytes(size: int) -> str:
    """A byte count as people read it: 1.50 GiB, 12.0 MiB, 512 bytes."""
    if size >= GIB:
        return f"{size / GIB:,.2f} GiB"
    if size >= MIB:
        return f"{size / MIB:,.1f} MiB"
    if size >= 1024:
        return f"{size / 1024:,.1f} KiB"
    return f"{size} bytes"


# --- the shapes the API and services exchange ---------------------------------------------------


def _check_name(value: str) -> str:
    if (problem := name_problem(value)) is not None:
        raise ValueError(problem)
    return value


class DatasetDraft(BaseModel):
    """A dataset as a project registers it; its data comes in versions, uploaded after."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    project: str = Field(description="the owning project, by name or id")
    name: str = Field(description="letters, digits, '.', '_' and '-'; unique in the project")
    description: str = Field(default="", max_length=DESCRIPTION_MAX_CHARS)
    classification: Classification = Classification.INTERNAL
    residency: Residency = Field(default=Residency.EU, description="where the data may be")
    legal_basis: LegalBasis | None = Field(default=None, description="GDPR art. 6; personal data")
    special_category_condition: SpecialCategoryCondition | None = Field(
        default=None, description="GDPR art. 9(2); special-category data"
    )
    purpose: str | None = Field(default=None, max_length=2000, description="why it is processed")
    licence: str | None = Field(default=None, max_length=200, description="e.g. CC-BY-4.0")
    provenance: str | None = Field(default=None, max_length=2000, description="where it came from")
    retention_until: date | None = Field(default=None, description="when it must be deleted")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value)

    @model_validator(mode="after")
    def _gdpr(self) -> DatasetDraft:
        problems = terms_problems(
            self.classification,
            self.legal_basis,
            self.purpose,
            self.retention_until,
            self.special_category_condition,
        )
        if problems:
            raise ValueError("; ".join(f"{f}: {m}" for f, m in problems))
        return self


class DatasetVersion(BaseModel):
    """One immutable version of a dataset's data (the key that encrypts it is never shown)."""

    number: int
    size_bytes: int
    sha256: str
    key_version: int = Field(description="the organisation key version wrapping its data key")
    created_by: str
    created_at: datetime


class Dataset(BaseModel):
    """A registered dataset as the caller may see it."""

    id: int
    project: str
    organisation: str
    name: str
    description: str
    classification: Classification
    residency: Residency
    legal_basis: LegalBasis | None
    special_category_condition: SpecialCategoryCondition | None
    purpose: str | None
    licence: str | None
    provenance: str | None
    retention_until: date | None
    access: Access
    created_by: str
    created_at: datetime
    latest_version: int | None = None
    size_bytes: int | None = Field(default=None, description="of the latest version")
    sha256: str | None = Field(default=None, description="of the latest version")
    versions: list[DatasetVersion] = Field(default_factory=list, description="newest first")
    grants: list[str] = Field(
        default_factory=list, description="projects granted read access (owners see them)"
    )


class GrantDraft(BaseModel):
    """Let another project's members read a dataset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    project: str = Field(description="the project to grant, by name")
    cross_organisation: bool = Field(
        default=False,
        description="the owner's explicit consent to grant a project of another organisation",
    )


class DatasetGrant(BaseModel):
    dataset: str
    owner: str = Field(description="the owning project")
    project: str = Field(description="the granted project")
    organisation: str = Field(description="the granted project's organisation")
    cross_organisation: bool
    granted_by: str
    created_at: datetime


class OrganisationKey(BaseModel):
    """One version of an organisation's key: its history, never its material."""

    organisation_id: int
    organisation: str
    version: int
    current: bool
    data_keys: int = Field(description="dataset versions whose data key it wraps")
    created_at: datetime
    retired_at: datetime | None


class KeyRotation(BaseModel):
    """What a rotation did: data keys re-wrapped under the new version; no data re-encrypted."""

    organisation_id: int
    organisation: str
    from_version: int | None
    to_version: int
    data_keys_rewrapped: int
