"""Committing a use case's writes as one, and naming the conflict when it fails."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fabriek.domain.errors import Conflict


def commit(session: Session, conflict: str) -> None:
    """Commit all of the request's writes, or none; a uniqueness clash becomes a Conflict."""
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(conflict) from None
