"""Committing a use case's writes as one, and naming the conflict when it fails."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fabriek.domain.errors import Conflict


@contextmanager
def clash_is_conflict(session: Session, conflict: str) -> Iterator[None]:
    """Inside the block, a uniqueness clash (at flush or commit) rolls everything back and
    becomes a Conflict with this message."""
    try:
        yield
    except IntegrityError:
        session.rollback()
        raise Conflict(conflict) from None


def commit(session: Session, conflict: str) -> None:
    """Commit all of the request's writes, or none."""
    with clash_is_conflict(session, conflict):
        session.commit()
