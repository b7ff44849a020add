"""Accounts: each person's POSIX identity at the sites, their SSH keys and certificates, and
the terms of use they accepted; each project's POSIX group (and Slurm account)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from fabriek.store.tables.base import Base, Timestamp, utcnow


class PosixAccountRow(Base):
    """A person's Unix account on every site: one username and one UID, allocated once by
    Fabriek and never reused (files on shared storage keep their owner)."""

    __tablename__ = "posix_accounts"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    username: Mapped[str] = mapped_column(String(32), unique=True)
    uid: Mapped[int] = mapped_column(Integer, unique=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)


class PosixGroupRow(Base):
    """A project's Unix group (and the name of its Slurm account) on every site."""

    __tablename__ = "posix_groups"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(32), unique=True)
    gid: Mapped[int] = mapped_column(Integer, unique=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)


class SshKeyRow(Base):
    """A public SSH key a person registered for logging in to the login nodes."""

    __tablename__ = "ssh_keys"
    __table_args__ = (UniqueConstraint("user_id", "fingerprint"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    key_type: Mapped[str] = mapped_column(String(40))
    bits: Mapped[int]
    fingerprint: Mapped[str] = mapped_column(String(100))
    public_key: Mapped[str] = mapped_column(Text)
    comment: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(Timestamp())


class SshCertificateRow(Base):
    """A short-lived SSH user certificate the factory's certificate authority signed."""

    __tablename__ = "ssh_certificates"

    serial: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    key_id: Mapped[str] = mapped_column(String(200))
    principals: Mapped[list[str]] = mapped_column(JSON)
    fingerprint: Mapped[str] = mapped_column(String(100))
    valid_after: Mapped[datetime] = mapped_column(Timestamp())
    valid_before: Mapped[datetime] = mapped_column(Timestamp())
    issued_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(Timestamp())


class TermsRow(Base):
    """One version of acceptable-use terms, of the factory (scope "factory") or of a site
    (scope = the site's name)."""

    __tablename__ = "terms"
    __table_args__ = (UniqueConstraint("scope", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(63), index=True)
    version: Mapped[int]
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    # False for an editorial change: acceptance of an earlier version still counts.
    requires_acceptance: Mapped[bool] = mapped_column(Boolean, default=True)
    published_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    published_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)


class TermsAcceptanceRow(Base):
    """A person's acceptance of one version of terms of use."""

    __tablename__ = "terms_acceptances"
    __table_args__ = (UniqueConstraint("user_id", "terms_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    terms_id: Mapped[int] = mapped_column(ForeignKey("terms.id", ondelete="CASCADE"))
    accepted_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)
