"""Organisations the factory serves, and the kinds the access rules distinguish."""

from __future__ import annotations

import re
from enum import StrEnum


class OrganisationKind(StrEnum):
    """Kinds of organisation; eligibility for access tracks depends on them."""

    START_UP = "start-up"
    SCALE_UP = "scale-up"
    SME = "sme"
    LARGE_INDUSTRY = "large-industry"
    UNIVERSITY = "university"
    TO2_INSTITUTE = "to2-institute"
    UNIVERSITY_OF_APPLIED_SCIENCES = "university-of-applied-sciences"
    GOVERNMENT = "government"


_KVK = re.compile(r"^[0-9]{8}$")


def is_valid_kvk_number(number: str) -> bool:
    """A Dutch Chamber of Commerce (KvK) number has exactly eight digits."""
    return bool(_KVK.fullmatch(number))


class Sector(StrEnum):
    """The sectors the public dashboard reports: the kinds of organisation, coarser."""

    START_UPS = "start-ups"
    SMES = "smes"
    INDUSTRY = "industry"
    RESEARCH = "research"
    PUBLIC = "public"


# Scale-ups count with start-ups (young, growing companies, as the start-up track treats
# them); universities, universities of applied sciences and TO2 institutes are research.
SECTOR_OF: dict[OrganisationKind, Sector] = {
    OrganisationKind.START_UP: Sector.START_UPS,
    OrganisationKind.SCALE_UP: Sector.START_UPS,
    OrganisationKind.SME: Sector.SMES,
    OrganisationKind.LARGE_INDUSTRY: Sector.INDUSTRY,
    OrganisationKind.UNIVERSITY: Sector.RESEARCH,
    OrganisationKind.UNIVERSITY_OF_APPLIED_SCIENCES: Sector.RESEARCH,
    OrganisationKind.TO2_INSTITUTE: Sector.RESEARCH,
    OrganisationKind.GOVERNMENT: Sector.PUBLIC,
}
