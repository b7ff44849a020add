"""Who may do what: roles in a project and roles across the factory."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    """Every role a person can hold. The first two are held in a project."""

    MEMBER = "member"
    PRINCIPAL_INVESTIGATOR = "principal-investigator"
    REVIEWER = "reviewer"
    # Runs the calls: administrative checks, reviewer assignment, decisions.
    ACCESS_TEAM = "access-team"
    HUB_STAFF = "hub-staff"
    SITE_OPERATOR = "site-operator"
    ADMIN = "admin"


PROJECT_ROLES = frozenset({Role.MEMBER, Role.PRINCIPAL_INVESTIGATOR})
STAFF_ROLES = frozenset(
    {Role.REVIEWER, Role.ACCESS_TEAM, Role.HUB_STAFF, Role.SITE_OPERATOR, Role.ADMIN}
)
# A staff role's scope: the hub a hub-staff member serves, the site an operator runs.
SCOPED_ROLES = frozenset({Role.HUB_STAFF, Role.SITE_OPERATOR})


@dataclass(frozen=True)
class Principal:
    """The authenticated caller, as every rule sees it (however they signed in)."""

    user_id: int
    username: str
    staff_roles: frozenset[tuple[Role, str | None]] = field(default_factory=frozenset)
    project_roles: dict[int, Role] = field(default_factory=dict, hash=False, compare=False)
    # The assurance of the federated sign-in the caller's token descends from ('medium+mfa';
    # None: not from one) and through which identity; roles it did not meet the operator's
    # minimum for are left out of the roles above and said here, in words.
    assurance: str | None = None
    identity_id: int | None = None
    withheld: tuple[str, ...] = ()

    @property
    def is_admin(self) -> bool:
        return (Role.ADMIN, None) in self.staff_roles

    def has_role(self, role: Role) -> bool:
        """Holds this staff role in any scope."""
        return any(r == role for r, _ in self.staff_roles)

    def scopes(self, role: Role) -> frozenset[str]:
        """The scopes (hub codes, site names) in which the caller holds a scoped role."""
        return frozenset(s for r, s in self.staff_roles if r == role and s is not None)

    def in_project(self, project_id: int) -> bool:
        return project_id in self.project_roles

    def leads_project(self, project_id: int) -> bool:
        return self.project_roles.get(project_id) == Role.PRINCIPAL_INVESTIGATOR
