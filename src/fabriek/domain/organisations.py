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
