"""Identity: organisations, people, their roles and tokens, projects and memberships."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fabriek.store.tables.base import Base, Timestamp, utcnow


class OrganisationRow(Base):
    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    province: Mapped[str] = mapped_column(String(40), index=True)
    hub: Mapped[str] = mapped_column(String(40), index=True)
    kvk_number: Mapped[str | None] = mapped_column(String(8))
    # Where it is established (ISO 3166-1 alpha-2): some tracks require the EU or EEA.
    country: Mapped[str] = mapped_column(String(2), default="NL")
    # Its internet domain (tudelft.nl): how a federated sign-in's organisation claim
    # (SURFconext's schac_home_organization) finds it.
    domain: Mapped[str | None] = mapped_column(String(253), unique=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)


class UserRow(Base):
    __tablename__ = "users"
    # Who they are at an OpenID Connect provider: a subject is unique only per issuer.
    __table_args__ = (UniqueConstraint("oidc_issuer", "oidc_sub"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(63), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254), unique=True)
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), index=True)
    oidc_issuer: Mapped[str | None] = mapped_column(String(500))
    oidc_sub: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)
    # Set while the factory has suspended it (a person, a project, an allocation): no new
    # jobs, no logins at the sites; what runs finishes. The reason is shown to those it stops.
    suspended_at: Mapped[datetime | None] = mapped_column(Timestamp())
    suspended_reason: Mapped[str | None] = mapped_column(String(500))


class StaffRoleRow(Base):
    """A factory-wide role: reviewer, hub staff (of a hub), site operator (of a site), admin."""

    __tablename__ = "staff_roles"
    __table_args__ = (UniqueConstraint("user_id", "role", "scope"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(40))
    scope: Mapped[str | None] = mapped_column(String(63))


class ApiTokenRow(Base):
    """A personal API token: only its hash is kept."""

    __tablename__ = "api_tokens"

    key: Mapped[str] = mapped_column(String(12), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(Timestamp())
    revoked_at: Mapped[datetime | None] = mapped_column(Timestamp())


class OidcLoginRow(Base):
    """An OpenID Connect sign-in under way: kept from the redirect to the provider until
    its callback takes it (once), so any API process can finish it."""

    __tablename__ = "oidc_logins"

    state: Mapped[str] = mapped_column(String(64), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64))
    code_verifier: Mapped[str] = mapped_column(String(128))
    next_path: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(Timestamp(), index=True)


class ProjectRow(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)
    # Suspended (see UserRow.suspended_at): none of its members starts a job for it.
    suspended_at: Mapped[datetime | None] = mapped_column(Timestamp())
    suspended_reason: Mapped[str | None] = mapped_column(String(500))


class MembershipRow(Base):
    __tablename__ = "memberships"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)
