"""Pages of results: every listing is bounded and says how many there are in all."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

MAX_LIMIT = 1000
T = TypeVar("T")


@dataclass(frozen=True)
class PageRequest:
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


def count_all(session: Session, query: Select[*tuple[Any, ...]]) -> int:
    """How many rows the whole query has, whatever page is shown."""
    return session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0


def fetch_page(session: Session, query: Select[Any], page: PageRequest) -> tuple[list[Any], int]:
    """One page of a query's rows (first column) and the total count of the whole query."""
    total = count_all(session, query)
    rows = list(session.scalars(query.limit(min(page.limit, MAX_LIMIT)).offset(page.offset)))
    return rows, total
