"""How sure the factory may be of a federated sign-in, and how sure each role needs it to be.

An eduGAIN proxy (MyAccessID, SURFconext) says two things about a sign-in besides who it is:
how well the home institution checked the person's identity when it gave them an account
(the REFEDS Assurance Framework's identity-proofing levels, in `eduperson_assurance`:
https://refeds.org/assurance/IAP/low, /medium, /high), and whether this sign-in used a
second factor (the REFEDS MFA profile, https://refeds.org/profile/mfa, in `acr`; some proxies
also list it in `eduperson_assurance`). An operator sets a minimum per role, and per access
track for the members of projects with an allocation on it (`parse_rules`); a sign-in below
the minimum of a role the person holds is refused, and a token keeps the assurance of the
sign-in it descends from, so that a role's use through the API needs a sign-in that met it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum

REFEDS_MFA = "https://refeds.org/profile/mfa"
_IAP = "https://refeds.org/assurance/IAP/"
# A rule's key: a role (admin, site-operator, member, ...) or an access track ("track:CODE").
_KEY = re.compile(r"^(track:)?[a-z][a-z0-9-]{0,39}$")


class Level(IntEnum):
    """Identity proofing, REFEDS RAF's IAP levels in order; NONE: no level asserted."""

    NONE = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3


_LEVELS = {"low": Level.LOW, "medium": Level.MEDIUM, "high": Level.HIGH}


@dataclass(frozen=True)
class Assurance:
    """What one sign-in showed: its identity-proofing level and whether it used MFA."""

    level: Level = Level.NONE
    mfa: bool = False

    @property
    def code(self) -> str:
        """Compact text, as a token keeps it: 'medium+mfa', 'low', 'none'."""
        return self.level.name.lower() + ("+mfa" if self.mfa else "")

    @classmethod
    def from_code(cls, code: str) -> Assurance:
        """The inverse of `code`; ValueError for anything else."""
        level, _, rest = code.partition("+")
        if level not in {"none", *_LEVELS} or rest not in {"", "mfa"}:
            raise ValueError(f"not an assurance code: {code!r}")
        return cls(_LEVELS.get(level, Level.NONE), rest == "mfa")


def _values(value: object) -> list[str]:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [v.strip() for v in value if isinstance(v, str)]
    return []


def assurance_from_claims(claims: Mapping[str, object]) -> Assurance:
    """The assurance the provider's claims assert: the highest IAP level named in
    `eduperson_assurance`, and MFA when `acr` (or `eduperson_assurance`) names the REFEDS MFA
    profile. Values it does not know add nothing."""
    asserted = _values(claims.get("eduperson_assurance"))
    levels = [_LEVELS[v[len(_IAP) :]] for v in asserted if v.startswith(_IAP) and
              v[len(_IAP) :] in _LEVELS]  # fmt: skip
    mfa = REFEDS_MFA in _values(claims.get("acr")) or REFEDS_MFA in asserted
    return Assurance(max(levels, default=Level.NONE), mfa)


@dataclass(frozen=True)
class Minimum:
    """What a role needs of a sign-in."""

    level: Level = Level.NONE
    mfa: bool = False

    def __or__(self, other: Minimum) -> Minimum:
        """Both minimums at once."""
        return Minimum(max(self.level, other.level), self.mfa or other.mfa)

    def missing(self, got: Assurance) -> tuple[str, ...]:
        """What the sign-in lacks, in words; empty when it meets the minimum."""
        lacks: list[str] = []
        if got.level < self.level:
            shown = "no identity-assurance level" if got.level == Level.NONE else (
                f"level {got.level.name.lower()}")  # fmt: skip
            lacks.append(
                f"identity assurance of at least {self.level.name.lower()} "
                f"({_IAP}{self.level.name.lower()}); your sign-in showed {shown}"
            )
        if self.mfa and not got.mfa:
            lacks.append(
                f"multi-factor authentication ({REFEDS_MFA}); your sign-in used a single factor"
            )
        return tuple(lacks)

    @property
    def text(self) -> str:
        parts = ([self.level.name.lower()] if self.level else []) + (["mfa"] if self.mfa else [])
        return "+".join(parts) or "none"


@dataclass(frozen=True)
class Shortfall:
    """A role the sign-in does not meet the minimum of, and what it lacks."""

    role: str
    lacks: tuple[str, ...]
    project: str | None = None

    def __str__(self) -> str:
        held = f"{self.role} of project {self.project}" if self.project else self.role
        return f"{held} needs {' and '.join(self.lacks)}"


@dataclass(frozen=True)
class AssuranceRules:
    """The operator's minimums: by role, and by access track ('track:large-scale')."""

    minimums: Mapping[str, Minimum] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return any(m != Minimum() for m in self.minimums.values())

    @property
    def tracks(self) -> frozenset[str]:
        """The tracks with a minimum of their own."""
        return frozenset(k.removeprefix("track:") for k in self.minimums if k.startswith("track:"))

    @property
    def strictest(self) -> Minimum:
        """All minimums at once: a sign-in that meets it meets every role's."""
        found = Minimum()
        for needed in self.minimums.values():
            found = found | needed
        return found

    def for_role(self, role: str) -> Minimum:
        return self.minimums.get(role, Minimum())

    def for_project(self, role: str, tracks: Iterable[str]) -> Minimum:
        """A project role's minimum: the role's own and that of every track the project
        holds a current allocation on."""
        needed = self.for_role(role)
        for track in tracks:
            needed = needed | self.minimums.get(f"track:{track}", Minimum())
        return needed


NO_RULES = AssuranceRules()


def parse_rules(text: str) -> AssuranceRules:
    """Rules from the setting's text: 'admin=medium+mfa, site-operator=mfa,
    track:large-scale=mfa'. Each entry is KEY=REQUIREMENT, the key a role or 'track:CODE',
    the requirement 'low', 'medium' or 'high' and/or 'mfa' joined by '+'. ValueError with
    what is wrong otherwise."""
    minimums: dict[str, Minimum] = {}
    for entry in (e.strip() for e in re.split(r"[,\s]+", text) if e.strip()):
        key, sep, wanted = entry.partition("=")
        key = key.strip().lower()
        if not sep or not _KEY.fullmatch(key):
            raise ValueError(
                f"{entry!r} is not KEY=REQUIREMENT with KEY a role or track:CODE "
                "(e.g. admin=medium+mfa or track:large-scale=mfa)"
            )
        parts = [p for p in wanted.strip().lower().split("+") if p]
        unknown = [p for p in parts if p not in {"mfa", *_LEVELS}]
        levels = [_LEVELS[p] for p in parts if p in _LEVELS]
        if not parts or unknown or len(levels) > 1:
            raise ValueError(
                f"{entry!r}: a requirement is one of low, medium, high and/or mfa, joined by +"
            )
        if key in minimums:
            raise ValueError(f"{key} is given twice")
        minimums[key] = Minimum(levels[0] if levels else Level.NONE, "mfa" in parts)
    return AssuranceRules(minimums)


def shortfalls(
    rules: AssuranceRules,
    got: Assurance | None,
    staff_roles: Iterable[str],
    project_roles: Mapping[str, tuple[str, frozenset[str]]],
) -> list[Shortfall]:
    """The roles a sign-in with assurance `got` may not use: staff roles by name, project
    roles as 'ROLE of PROJECT' (`project_roles`: project name -> its role and the tracks of
    its current allocations). `got` None: a token not descended from a federated sign-in
    (made by the operator on the store), which no minimum applies to."""
    if got is None or not rules:
        return []
    found: list[Shortfall] = []
    for role in sorted(set(staff_roles)):
        if lacks := rules.for_role(role).missing(got):
            found.append(Shortfall(role, lacks))
    for project, (role, tracks) in sorted(project_roles.items()):
        if lacks := rules.for_project(role, tracks).missing(got):
            found.append(Shortfall(role, lacks, project))
    return found
