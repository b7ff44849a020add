"""Leadership: which control-plane process holds a singleton role (the dispatcher, the
housekeeping) among all the servers that share one database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from fabriek.store.tables.base import Base, Timestamp, utcnow


class LeaseRow(Base):
    """A role's lease: held by `holder` until `expires_at` unless renewed. `epoch` grows by
    one at every change of holder, so that work done under an old lease can be told apart
    (a fencing token)."""

    __tablename__ = "leases"

    role: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    epoch: Mapped[int] = mapped_column(BigInteger, default=1)
    acquired_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)
    renewed_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(Timestamp())
