"""The expertise network: experts at the hubs, universities and TO2 institutes, with skills
from a controlled vocabulary; where they work seen from a requester; their hours left in a
month; and the shapes the services and the API exchange (matching is
`fabriek.domain.support.matching`).

No I/O, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fabriek.domain.config_files import FileTable, read_table
from fabriek.domain.geography import HUBS, Hub, Province
from fabriek.domain.identity.people import Email
from fabriek.domain.inputs import Id

# -- the vocabulary of skills ------------------------------------------------------------------

_CODE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


class Skill(BaseModel):
    """One skill of the controlled vocabulary, with its labels in English and Dutch."""

    model_config = ConfigDict(frozen=True)

    code: str
    en: str
    nl: str


@dataclass(frozen=True)
class SkillVocabulary:
    """The skills experts may claim and requests may ask for, by code."""

    version: str
    skills: dict[str, Skill]

    def label(self, code: str) -> str:
        found = self.skills.get(code)
        return found.en if found else code

    def unknown(self, codes: Iterable[str]) -> list[str]:
        """The codes that are not in the vocabulary, in the order given."""
        return [c for c in codes if c not in self.skills]

    def describe_unknown(self, codes: Iterable[str]) -> str | None:
        """A sentence naming the unknown codes and the known ones; None when all are known."""
        bad = self.unknown(codes)
        if not bad:
            return None
        known = ", ".join(sorted(self.skills))
        return f"unknown skill {', '.join(repr(b) for b in bad)}; known skills: {known}"


class _SkillTable(FileTable):
    code: str
    # Empty when absent: the check below names what a skill lacks in words.
    en: str = ""
    nl: str = ""


class _VocabularyFile(FileTable):
    """The shape of expertise.toml."""

    version: str
    skills: list[_SkillTable]


def parse_vocabulary(data: Mapping[str, Any]) -> SkillVocabulary:
    """The vocabulary from its TOML data; ValueError names what is wrong."""
    file = read_table(_VocabularyFile, data)
    if not file.version:
        raise ValueError("the vocabulary needs a version string")
    if not file.skills:
        raise ValueError("the vocabulary needs at least one [[skills]] entry")
    skills: dict[str, Skill] = {}
    for n, entry in enumerate(file.skills, start=1):
        code, en, nl = entry.code, entry.en, entry.nl
        if not _CODE.match(code):
            raise ValueError(f"skill {n}: code {code!r} must be lower-case words joined by '-'")
        if not en or not nl:
            raise ValueError(f"skill {code}: needs both an English (en) and a Dutch (nl) label")
        if code in skills:
            raise ValueError(f"skill {code} is listed twice")
        skills[code] = Skill(code=code, en=en, nl=nl)
    return SkillVocabulary(file.version, skills)


# -- regions: which hubs are near a requester --------------------------------------------------

# Provinces that share a border (over land or a dam: Fryslân and Noord-Holland meet at the
# Afsluitdijk). A hub neighbours another when one of its provinces borders one of the other's.
PROVINCE_BORDERS: dict[Province, frozenset[Province]] = {
    p: frozenset(n)
    for p, n in {
        Province.GRONINGEN: {Province.FRYSLAN, Province.DRENTHE},
        Province.FRYSLAN: {
            Province.GRONINGEN, Province.DRENTHE, Province.OVERIJSSEL, Province.FLEVOLAND,
            Province.NOORD_HOLLAND,
        },
        Province.DRENTHE: {Province.GRONINGEN, Province.FRYSLAN, Province.OVERIJSSEL},
        Province.OVERIJSSEL: {
            Province.FRYSLAN, Province.DRENTHE, Province.GELDERLAND, Province.FLEVOLAND,
        },
        Province.FLEVOLAND: {
            Province.FRYSLAN, Province.OVERIJSSEL, Province.GELDERLAND, Province.UTRECHT,
            Province.NOORD_HOLLAND,
        },
        Province.GELDERLAND: {
            Province.OVERIJSSEL, Province.FLEVOLAND, Province.UTRECHT, Province.ZUID_HOLLAND,
            Province.NOORD_BRABANT, Province.LIMBURG,
        },
        Province.UTRECHT: {
            Province.FLEVOLAND, Province.GELDERLAND, Province.NOORD_HOLLAND,
            Province.ZUID_HOLLAND,
        },
        Province.NOORD_HOLLAND: {
            Province.FRYSLAN, Province.FLEVOLAND, Province.UTRECHT, Province.ZUID_HOLLAND,
        },
        Province.ZUID_HOLLAND: {
            Province.NOORD_HOLLAND, Province.UTRECHT, Province.GELDERLAND,
            Province.NOORD_BRABANT, Province.ZEELAND,
        },
        Province.ZEELAND: {Province.ZUID_HOLLAND, Province.NOORD_BRABANT},
        Province.NOORD_BRABANT: {
            Province.ZEELAND, Province.ZUID_HOLLAND, Province.GELDERLAND, Province.LIMBURG,
        },
        Province.LIMBURG: {Province.NOORD_BRABANT, Province.GELDERLAND},
    }.items()
}  # fmt: skip


def neighbouring_hubs(hub: Hub) -> frozenset[Hub]:
    """The other hubs whose provinces border one of `hub`'s."""
    near = {n for p in HUBS[hub].provinces for n in PROVINCE_BORDERS[p]}
    return frozenset(
        other
        for other, info in HUBS.items()
        if other is not hub and any(p in near for p in info.provinces)
    )


class Region(StrEnum):
    """Where an expert works, seen from the requester: nearer ranks higher."""

    OWN_HUB = "own-hub"
    NEIGHBOURING_HUB = "neighbouring-hub"
    OTHER_HUB = "other-hub"


def region_of(expert_hub: Hub, requester_hub: Hub) -> Region:
    if expert_hub is requester_hub:
        return Region.OWN_HUB
    if expert_hub in neighbouring_hubs(requester_hub):
        return Region.NEIGHBOURING_HUB
    return Region.OTHER_HUB


# -- availability ------------------------------------------------------------------------------


def month_start(day: date) -> date:
    """The first day of the month `day` is in: months are keyed by it."""
    return day.replace(day=1)


def parse_month(text: str) -> date:
    """'2026-11' (or any day of it, '2026-11-29') as the first day of that month."""
    try:
        if re.fullmatch(r"\d{4}-\d{2}", text.strip()):
            return date.fromisoformat(text.strip() + "-01")
        return month_start(date.fromisoformat(text.strip()))
    except ValueError:
        raise ValueError(f"{text!r} is not a month; write it as YYYY-MM, e.g. 2026-11") from None


@dataclass(frozen=True)
class Booking:
    """One assignment's hours in one month: those it reserved there (in the month it was
    made for; 0 in others) and those logged as delivered there."""

    reserved: float
    delivered: float


def hours_booked(bookings: Iterable[Booking]) -> float:
    """An expert's hours taken in a month: each assignment counts what it reserved, or
    what was delivered if that is more (overrun uses availability too)."""
    return sum(max(b.reserved, b.delivered) for b in bookings)


def hours_left(hours_per_month: float, bookings: Iterable[Booking]) -> float:
    """What an expert can still take on in a month; never below nothing."""
    return max(0.0, hours_per_month - hours_booked(bookings))


# -- what the API exchanges ----------------------------------------------------------------------

_LANGUAGE = re.compile(r"^[a-z]{2}$")
MAX_HOURS_PER_MONTH = 200.0


def _languages(values: list[str]) -> list[str]:
    cleaned = []
    for value in values:
        code = value.strip().lower()
        if not _LANGUAGE.match(code):
            raise ValueError(f"{value!r} is not a two-letter language code such as nl or en")
        if code not in cleaned:
            cleaned.append(code)
    return cleaned


def _skills(values: list[str]) -> list[str]:
    cleaned: list[str] = []
    for value in values:
        code = value.strip().lower()
        if code and code not in cleaned:
            cleaned.append(code)
    if not cleaned:
        raise ValueError("name at least one skill")
    return cleaned


class ExpertDraft(BaseModel):
    """A new expert in the directory."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=2, max_length=200)
    email: Email | None = None
    organisation: str = Field(min_length=2, max_length=200, description="where they work")
    hub: Hub = Field(description="the AI hub whose network they are part of")
    skills: list[str] = Field(min_length=1, description="codes from GET /api/v1/skills")
    languages: list[str] = Field(default_factory=lambda: ["nl", "en"], min_length=1)
    hours_per_month: float = Field(ge=0, le=MAX_HOURS_PER_MONTH)

    @field_validator("skills")
    @classmethod
    def _skill_codes(cls, value: list[str]) -> list[str]:
        return _skills(value)

    @field_validator("languages")
    @classmethod
    def _language_codes(cls, value: list[str]) -> list[str]:
        return _languages(value)


class ExpertPatch(BaseModel):
    """Changes to an expert; what is left out stays as it is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, min_length=2, max_length=200)
    email: Email | None = None
    organisation: str | None = Field(default=None, min_length=2, max_length=200)
    hub: Hub | None = None
    skills: list[str] | None = Field(default=None, min_length=1)
    languages: list[str] | None = Field(default=None, min_length=1)
    hours_per_month: float | None = Field(default=None, ge=0, le=MAX_HOURS_PER_MONTH)
    active: bool | None = Field(default=None, description="false: no longer takes requests")

    @field_validator("skills")
    @classmethod
    def _skill_codes(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _skills(value)

    @field_validator("languages")
    @classmethod
    def _language_codes(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _languages(value)


class Expert(BaseModel):
    """An expert in the directory, with the hours they have left this month. The e-mail
    address is shown to hub staff and admins only."""

    id: int
    name: str
    email: str | None
    organisation: str
    hub: Hub
    hub_name: str
    skills: list[str]
    languages: list[str]
    hours_per_month: float
    hours_left: float = Field(description="in `month`")
    month: date = Field(description="the month `hours_left` is for (its first day)")
    active: bool


class ExpertiseRequestDraft(BaseModel):
    """A request for expertise, from a support ticket or about a proposal (or neither).
    The requester's organisation decides the region and the sector: a proposal's own, the
    one named, or the caller's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    skills: list[str] = Field(min_length=1, description="codes from GET /api/v1/skills")
    hours: float = Field(default=2.0, gt=0, le=MAX_HOURS_PER_MONTH, description="hours needed")
    description: str = Field(default="", max_length=4000)
    language: str | None = Field(default=None, description="preferred language, e.g. nl")
    ticket_id: Id | None = None
    proposal_id: Id | None = None
    organisation_id: Id | None = None

    @field_validator("skills")
    @classmethod
    def _skill_codes(cls, value: list[str]) -> list[str]:
        return _skills(value)

    @field_validator("language")
    @classmethod
    def _language_code(cls, value: str | None) -> str | None:
        return None if value is None else _languages([value])[0]

    @model_validator(mode="after")
    def _one_subject(self) -> ExpertiseRequestDraft:
        if self.ticket_id is not None and self.proposal_id is not None:
            raise ValueError("a request is about a ticket or a proposal, not both")
        return self


class Assignment(BaseModel):
    """An expert assigned to a request: the hours reserved in a month and delivered."""

    expert_id: int
    expert: str
    hub: Hub
    month: date
    hours_reserved: float
    hours_delivered: float
    assigned_by: str
    assigned_at: datetime


class Consultation(BaseModel):
    """Hours an expert delivered on a request, on a day."""

    id: int
    expert_id: int
    expert: str
    day: date
    hours: float
    note: str
    logged_by: str
    logged_at: datetime


class ExpertiseRequest(BaseModel):
    id: int
    skills: list[str]
    hours: float
    description: str
    language: str | None
    ticket_id: int | None
    proposal_id: int | None
    organisation: str
    province: Province
    hub: Hub
    sector: str
    created_by: str
    created_at: datetime
    assignments: list[Assignment]
    consultations: list[Consultation]
    hours_delivered: float


class AssignmentDraft(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    expert_id: Id
    hours: float | None = Field(
        default=None, gt=0, le=MAX_HOURS_PER_MONTH, description="default: the hours asked"
    )
    month: str | None = Field(default=None, description="YYYY-MM; default: this month")


class ConsultationDraft(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hours: float = Field(gt=0, le=24, description="hours delivered that day")
    expert_id: Id | None = Field(default=None, description="default: the one expert assigned")
    day: date | None = Field(default=None, description="the day; default today")
    note: str = Field(default="", max_length=2000)
