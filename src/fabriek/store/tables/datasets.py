"""Datasets: registered data, its encrypted versions, organisation keys and grants."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from fabriek.store.tables.base import Base, Timestamp, utcnow


class DatasetRow(Base):
    """Data a project registered, with its terms; its bytes are in `dataset_versions`."""

    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    classification: Mapped[str] = mapped_column(String(40))
    residency: Mapped[str] = mapped_column(String(20))
    legal_basis: Mapped[str | None] = mapped_column(String(40))
    special_category_condition: Mapped[str | None] = mapped_column(String(40))
    purpose: Mapped[str | None] = mapped_column(Text)
    licence: Mapped[str | None] = mapped_column(String(200))
    provenance: Mapped[str | None] = mapped_column(Text)
    retention_until: Mapped[date | None] = mapped_column(Date)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)


class OrganisationKeyRow(Base):
    """One version of an organisation's key, wrapped by the master key (which is not in the
    database). A retired version's material is destroyed once its data keys are re-wrapped."""

    __tablename__ = "organisation_keys"

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Which master key wrapped it (a public id, not the key).
    master_key_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(Timestamp())


class DatasetVersionRow(Base):
    """One immutable version of a dataset: its size and SHA-256 (of the plaintext), the
    stored object holding its ciphertext, and its own data key wrapped by an organisation
    key. Deleting the row destroys the only copy of the data key (crypto-shredding)."""

    __tablename__ = "dataset_versions"
    __table_args__ = (
        UniqueConstraint("dataset_id", "number"),
        ForeignKeyConstraint(
            ["organisation_id", "key_version"],
            ["organisation_keys.organisation_id", "organisation_keys.version"],
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int]
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    object_name: Mapped[str] = mapped_column(String(32), unique=True)
    wrapped_data_key: Mapped[bytes] = mapped_column(LargeBinary)
    organisation_id: Mapped[int] = mapped_column(Integer, index=True)
    key_version: Mapped[int]
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)


class DatasetGrantRow(Base):
    """A project other than the owner may read a dataset; `cross_organisation` records that
    the owner consented to a project of another organisation."""

    __tablename__ = "dataset_grants"

    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True
    )
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    cross_organisation: Mapped[bool] = mapped_column(Boolean, default=False)
    granted_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)
