"""Project membership from a federated sign-in's entitlements (`eduperson_entitlement`).

A community's group management (the federation platform's, a MyAccessID community) says
which groups a person is in as URNs in the form of AARC-G002:

    urn:geant:myaccessid.org:group:fabriek:PROJECT:role=member#aai.example.org

`<prefix>:PROJECT` is a Fabriek project, `role=` the person's role in it (member, or pi /
principal-investigator; none: member), and `#authority` the group management that vouches
for it. Only groups directly under the configured prefix count: a subgroup
(`...:PROJECT:sub`) or a role Fabriek does not know is not a membership. The sign-in then
adds and removes the memberships the entitlements manage (`membership_changes`); those
made by hand in Fabriek are never touched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from fabriek.domain.roles import Role

# Project names follow `fabriek.domain.identity.people` (slugs).
_PROJECT = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_ROLES = {
    "member": Role.MEMBER,
    "pi": Role.PRINCIPAL_INVESTIGATOR,
    "principal-investigator": Role.PRINCIPAL_INVESTIGATOR,
}


@dataclass(frozen=True)
class EntitlementScheme:
    """Which entitlements are Fabriek's: the group prefix (without the trailing colon) and,
    when set, the only authority believed."""

    prefix: str
    authority: str | None = None


@dataclass(frozen=True)
class Entitled:
    """A project membership an entitlement asks for."""

    project: str
    role: Role


def parse_entitlement(scheme: EntitlementScheme, value: str) -> Entitled | None:
    """The membership one entitlement asks for, or None when it is not one of Fabriek's
    (another prefix or authority, a subgroup, an unknown role)."""
    group, _, authority = value.strip().partition("#")
    if scheme.authority is not None and authority != scheme.authority:
        return None
    group, prefix = _normal(group), _normal(scheme.prefix) + ":"
    if not group.startswith(prefix):
        return None
    parts = group[len(prefix) :].split(":")
    project, role = parts[0], Role.MEMBER
    if not _PROJECT.fullmatch(project):
        return None
    if len(parts) == 2 and parts[1].startswith("role="):
        found = _ROLES.get(parts[1][len("role=") :])
        if found is None:
            return None
        role = found
    elif len(parts) != 1:
        return None
    return Entitled(project, role)


def _normal(urn: str) -> str:
    """The URN with 'urn:NID:' lowercased: RFC 8141 makes that part case-insensitive, the
    rest is compared as written."""
    found = re.match(r"^urn:[a-z0-9][a-z0-9-]{0,31}:", urn, re.IGNORECASE)
    return found.group(0).lower() + urn[found.end() :] if found else urn


def wanted_memberships(scheme: EntitlementScheme, values: Iterable[str]) -> dict[str, Role]:
    """The project memberships the entitlements ask for, by project; where two name the
    same project the principal investigator's role wins."""
    wanted: dict[str, Role] = {}
    for entitlement in values:
        found = parse_entitlement(scheme, entitlement)
        if found is None:
            continue
        if wanted.get(found.project) != Role.PRINCIPAL_INVESTIGATOR:
            wanted[found.project] = found.role
    return wanted


@dataclass(frozen=True)
class MembershipChanges:
    """What a sign-in changes: memberships to add, to remove, whose role to change (all by
    project), and entitlements naming projects this factory does not have."""

    add: Mapping[str, Role]
    remove: frozenset[str]
    change: Mapping[str, Role]
    unknown: frozenset[str]


def membership_changes(
    wanted: Mapping[str, Role],
    managed: Mapping[str, Role],
    by_hand: Iterable[str],
    existing_projects: Iterable[str],
) -> MembershipChanges:
    """From the entitlements' memberships (`wanted`), those the entitlements made before
    (`managed`) and those made by hand (never touched), what to add, remove and change."""
    exists, manual = frozenset(existing_projects), frozenset(by_hand)
    known = {p: r for p, r in wanted.items() if p in exists}
    return MembershipChanges(
        add={p: r for p, r in known.items() if p not in managed and p not in manual},
        remove=frozenset(p for p in managed if p not in known),
        change={p: r for p, r in known.items() if p in managed and managed[p] != r},
        unknown=frozenset(p for p in wanted if p not in exists),
    )
