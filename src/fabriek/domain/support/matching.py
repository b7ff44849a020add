"""The pure rule that matches a request for expertise to experts by skills, region, language
and hours left, and explains the match: why each candidate has its place, and why the
others were passed over.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from fabriek.domain.geography import HUBS, Hub, Province
from fabriek.domain.support.expertise import Region, region_of


@dataclass(frozen=True)
class ExpertOption:
    """An expert as the matching rule sees them, for one month."""

    id: int
    name: str
    hub: Hub
    skills: frozenset[str]
    languages: frozenset[str]
    hours_per_month: float
    hours_left: float


@dataclass(frozen=True)
class Need:
    """What a request asks for: the skills, the hours, the requester's hub and province,
    and a language it prefers (None: any)."""

    skills: frozenset[str]
    hours: float
    hub: Hub
    province: Province | None
    language: str | None = None


# Points of the score. A matched skill outweighs everything else together
# (region 20 + language 5 + availability up to 4 < 100), so an expert with more of the
# skills asked always ranks above one with fewer.
SKILL_POINTS = 100.0
REGION_POINTS = {Region.OWN_HUB: 20.0, Region.NEIGHBOURING_HUB: 10.0, Region.OTHER_HUB: 0.0}
LANGUAGE_POINTS = 5.0
AVAILABILITY_POINTS = 4.0


class Candidate(BaseModel):
    """An expert proposed for a request, with the reasons for their place."""

    model_config = ConfigDict(frozen=True)

    rank: int
    expert_id: int
    name: str
    hub: Hub
    score: float
    matched_skills: list[str]
    missing_skills: list[str]
    region: Region
    speaks_language: bool | None = Field(description="None when the request names no language")
    hours_left: float = Field(description="hours the expert can still take on in the month")
    hours_per_month: float
    why: list[str] = Field(description="the match explained, one line per criterion")


class PassedOver(BaseModel):
    """An expert not proposed, and why."""

    model_config = ConfigDict(frozen=True)

    expert_id: int
    name: str
    reason: str


class MatchResult(BaseModel):
    candidates: list[Candidate]
    passed_over: list[PassedOver]


class RequestMatches(MatchResult):
    """The match of one request, for one month's availability."""

    request_id: int
    month: date


def score(option: ExpertOption, need: Need) -> float:
    """How well an expert fits a request (higher is better); see the points above."""
    matched = len(option.skills & need.skills)
    points = SKILL_POINTS * matched + REGION_POINTS[region_of(option.hub, need.hub)]
    if need.language is not None and need.language in option.languages:
        points += LANGUAGE_POINTS
    if option.hours_per_month > 0:
        points += AVAILABILITY_POINTS * min(1.0, option.hours_left / option.hours_per_month)
    return points


def _hours(value: float) -> str:
    return f"{value:g} h"


def _region_line(option: ExpertOption, need: Need, region: Region) -> str:
    where = HUBS[option.hub].name
    home = HUBS[need.hub].name
    serves = f", the hub serving {need.province.value}" if need.province else ""
    if region is Region.OWN_HUB:
        return f"region: works at {where}{serves}"
    if region is Region.NEIGHBOURING_HUB:
        return f"region: works at {where}, a neighbour of {home}{serves}"
    return f"region: works at {where}, not next to {home}{serves}"


def match(
    need: Need,
    experts: Iterable[ExpertOption],
    labels: Mapping[str, str] | None = None,
    month: date | None = None,
) -> MatchResult:
    """The experts to propose for `need`, best first, each explained; and those passed
    over: without any skill asked, or without the hours asked left in the month."""
    names = labels or {}

    def label(code: str) -> str:
        return names.get(code, code)

    in_month = f" in {month:%Y-%m}" if month else ""
    ranked: list[tuple[float, ExpertOption]] = []
    passed: list[PassedOver] = []
    for option in experts:
        if not option.skills & need.skills:
            passed.append(
                PassedOver(expert_id=option.id, name=option.name,
                           reason="has none of the skills asked")
            )  # fmt: skip
        elif option.hours_left < need.hours:
            passed.append(
                PassedOver(
                    expert_id=option.id, name=option.name,
                    reason=f"only {_hours(option.hours_left)} left of "
                    f"{_hours(option.hours_per_month)}{in_month}; {_hours(need.hours)} asked",
                )
            )  # fmt: skip
        else:
            ranked.append((score(option, need), option))
    ranked.sort(key=lambda pair: (-pair[0], pair[1].name, pair[1].id))
    candidates = []
    for rank, (points, option) in enumerate(ranked, start=1):
        matched = sorted(option.skills & need.skills)
        missing = sorted(need.skills - option.skills)
        region = region_of(option.hub, need.hub)
        skills_line = (
            f"skills: has {', '.join(label(s) for s in matched)} "
            f"({len(matched)} of {len(need.skills)} asked)"
        )
        if missing:
            skills_line += f"; lacks {', '.join(label(s) for s in missing)}"
        why = [skills_line, _region_line(option, need, region)]
        speaks: bool | None = None
        if need.language is not None:
            speaks = need.language in option.languages
            spoken = ", ".join(sorted(option.languages)) or "none recorded"
            why.append(
                f"language: speaks {need.language}"
                if speaks
                else f"language: does not speak {need.language} (speaks {spoken})"
            )
        why.append(
            f"availability: {_hours(option.hours_left)} left of "
            f"{_hours(option.hours_per_month)}{in_month}; {_hours(need.hours)} asked"
        )
        candidates.append(
            Candidate(
                rank=rank, expert_id=option.id, name=option.name, hub=option.hub,
                score=round(points, 3), matched_skills=matched, missing_skills=missing,
                region=region, speaks_language=speaks, hours_left=option.hours_left,
                hours_per_month=option.hours_per_month, why=why,
            )
        )  # fmt: skip
    return MatchResult(candidates=candidates, passed_over=passed)
