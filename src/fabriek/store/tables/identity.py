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
    # The assurance of the federated sign-in the token descends from ('medium+mfa'; see
    # `fabriek.domain.identity.assurance`), and through which of the person's identities;
    # None: not from a federated sign-in (made by the operator on the store).
    assurance: Mapped[str | None] = mapped_column(String(20))
    identity_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_identities.id", ondelete="SET NULL"), index=True
    )


class UserIdentityRow(Base):
    """One of a person's identities at an OpenID Connect provider (their home institution
    through an eduGAIN proxy, a platform identity): any of them signs in to the same user.
    The first is made with the user; others only by a verified link (`identities.link`)."""

    __tablename__ = "user_identities"
    __table_args__ = (UniqueConstraint("issuer", "subject"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    issuer: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str] = mapped_column(String(255))
    # As the provider released it at the last sign-in, to tell the identities apart.
    email: Mapped[str | None] = mapped_column(String(254))
    linked_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(Timestamp())


class IdentityLinkOfferRow(Base):
    """A second identity a signed-in person came back with, waiting for them to confirm
    that it is theirs (and to be linked), for a few minutes, in the same browser session."""

    __tablename__ = "identity_link_offers"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # The session's token: only the browser session that started the link may confirm it.
    token_key: Mapped[str] = mapped_column(String(12))
    issuer: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(254))
    assurance: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(Timestamp(), index=True)


class OidcLoginRow(Base):
    """An OpenID Connect sign-in under way: kept from the redirect to the provider until
    its callback takes it (once), so any API process can finish it."""

    __tablename__ = "oidc_logins"

    state: Mapped[str] = mapped_column(String(64), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64))
    code_verifier: Mapped[str] = mapped_column(String(128))
    next_path: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(Timestamp(), index=True)
    # Set when the sign-in links another identity to a signed-in person's account rather
    # than signing anyone in: whose, and their session's token.
    link_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    link_token_key: Mapped[str | None] = mapped_column(String(12))


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
    # Who manages it: None, Fabriek (a lead or the hub); 'entitlement', the sign-in's
    # entitlements (`eduperson_entitlement`), which add and remove it at each sign-in.
    source: Mapped[str | None] = mapped_column(String(40))
