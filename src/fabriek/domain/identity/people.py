"""Organisations, people, projects and memberships: the shapes services and the API exchange."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from fabriek.domain.geography import Hub, Province
from fabriek.domain.identity.oidc import organisation_domain
from fabriek.domain.identity.organisations import OrganisationKind, is_valid_kvk_number
from fabriek.domain.inputs import Id
from fabriek.domain.roles import Role
from fabriek.domain.sites import Slug

# A deliberately plain check: the address is confirmed by mail, not by a regex.
Email = Annotated[
    str,
    StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254),
    Field(description="e-mail address"),
]

Username = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9._-]{1,62}$"),
    Field(description="lowercase letters, digits, '.', '_' and '-'; starts with a letter"),
]


class OrganisationDraft(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=2, max_length=200)
    kind: OrganisationKind
    province: Province
    hub: Hub | None = Field(default=None, description="default: the hub serving the province")
    kvk_number: str | None = Field(default=None, description="Chamber of Commerce number")
    domain: str | None = Field(
        default=None,
        max_length=253,
        description="internet domain (tudelft.nl): federated sign-ins naming it join it",
    )

    @field_validator("kvk_number")
    @classmethod
    def _kvk(cls, v: str | None) -> str | None:
        if v is not None and not is_valid_kvk_number(v):
            raise ValueError("a KvK number has exactly eight digits")
        return v

    @field_validator("domain")
    @classmethod
    def _domain(cls, v: str | None) -> str | None:
        return _checked_domain(v)


def _checked_domain(v: str | None) -> str | None:
    if v is None:
        return None
    domain = organisation_domain(v)
    if domain is None:
        raise ValueError("a domain looks like tudelft.nl: labels of letters, digits and '-'")
    return domain


class OrganisationChange(BaseModel):
    """What may be changed of an organisation after onboarding."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    domain: str | None = Field(
        max_length=253, description="internet domain (tudelft.nl); null: none"
    )

    @field_validator("domain")
    @classmethod
    def _domain(cls, v: str | None) -> str | None:
        return _checked_domain(v)


class Organisation(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    kind: OrganisationKind
    province: Province
    hub: Hub
    kvk_number: str | None
    domain: str | None = None
    created_at: datetime


class StaffRoleGrant(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    scope: str | None = Field(default=None, description="hub code or site name, for scoped roles")


class UserDraft(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    username: Username
    full_name: str = Field(min_length=1, max_length=200)
    email: Email
    organisation_id: Id | None = None
    staff_roles: list[StaffRoleGrant] = Field(default_factory=list, max_length=20)


class User(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    full_name: str
    email: str
    organisation_id: int | None
    staff_roles: list[StaffRoleGrant]
    created_at: datetime


class ProjectDraft(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Slug
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)
    organisation_id: Id
    principal_investigator: str | None = Field(
        default=None, description="username of the project's lead; becomes a member"
    )


class Project(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    title: str
    description: str
    organisation_id: int
    organisation: str
    members: int
    created_at: datetime


class MembershipDraft(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = Field(min_length=1, max_length=63)
    role: Role = Role.MEMBER


class Membership(BaseModel):
    project: str
    username: str
    full_name: str
    role: Role
    since: datetime


class TokenDraft(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="cli", min_length=1, max_length=100)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class TokenInfo(BaseModel):
    """A token as listed: never its secret."""

    key: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class IdentityInfo(BaseModel):
    """One of a person's federated identities, as they see it."""

    id: int
    issuer: str = Field(description="the OpenID Connect provider")
    subject: str = Field(description="who the person is at that provider")
    email: str | None = Field(description="the address it released at its last sign-in")
    linked_at: datetime
    last_sign_in_at: datetime | None
    current: bool = Field(description="the caller's token descends from a sign-in with it")


class NewTokenInfo(TokenInfo):
    """A token as created: the secret, shown this once."""

    token: str
