"""Where a ticket goes: the queues (the hubs' and the central desk's), the support
configuration that says who owns which category and what each promises, and the routing
rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from fabriek.domain.geography import HUBS, Hub, Province, hub_for_province
from fabriek.domain.support.tickets import Category

# The queue of the central support desk (the access team and admins), beside the hubs'.
CENTRAL: Final = "central"
CENTRAL_NAME: Final = "Central support desk"


def queue_name(queue: str) -> str:
    """The display name of a queue: a hub's name or the central desk's."""
    if queue == CENTRAL:
        return CENTRAL_NAME
    try:
        return HUBS[Hub(queue)].name
    except ValueError:
        return queue


def parse_queue(text: str) -> str:
    """A queue by its code (`brightlands`, `central`); ValueError names the known ones."""
    wanted = text.strip().lower()
    if wanted == CENTRAL or wanted in {h.value for h in Hub}:
        return wanted
    known = ", ".join([*(h.value for h in Hub), CENTRAL])
    raise ValueError(f"no hub or desk {text!r}; known: {known}")


@dataclass(frozen=True)
class ServiceLevel:
    """A category's promise, in Dutch working days from the moment the ticket was opened:
    a first answer within `first_answer_working_days`, a resolution within
    `resolution_working_days` (plus the whole working days spent waiting for the user)."""

    first_answer_working_days: int
    resolution_working_days: int


@dataclass(frozen=True)
class SupportConfig:
    """Who owns which category and what each promises: the shipped support.toml or an
    operator's file."""

    version: str
    # Categories the central desk answers, whatever the user's province.
    central: frozenset[Category]
    levels: Mapping[Category, ServiceLevel]
    # A resolved ticket the user did not reopen closes by itself after this many working days.
    close_resolved_after_working_days: int


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where} must be a whole number of working days, 0 or more")
    return value


def parse_support_config(data: Mapping[str, Any]) -> SupportConfig:
    """Check and read a parsed support.toml; ValueError names the entry at fault."""
    version = data.get("version")
    if not isinstance(version, str) or not version:
        raise ValueError("version: give the file's version as a string, e.g. '2026-11'")
    routing = data.get("routing", {})
    if not isinstance(routing, Mapping):
        raise ValueError("[routing] must be a table")
    central_codes = routing.get("central", [])
    if not isinstance(central_codes, list):
        raise ValueError("routing.central must be a list of categories")
    central: set[Category] = set()
    for code in central_codes:
        try:
            central.add(Category(code))
        except ValueError:
            raise ValueError(
                f"routing.central: no category {code!r}; known: {', '.join(Category)}"
            ) from None
    raw_levels = data.get("service_levels")
    if not isinstance(raw_levels, Mapping):
        raise ValueError("[service_levels.CATEGORY] tables are missing")
    levels: dict[Category, ServiceLevel] = {}
    for code, entry in raw_levels.items():
        try:
            category = Category(code)
        except ValueError:
            raise ValueError(
                f"service_levels.{code}: no such category; known: {', '.join(Category)}"
            ) from None
        if not isinstance(entry, Mapping):
            raise ValueError(f"service_levels.{code} must be a table")
        first = _positive_int(
            entry.get("first_answer_working_days"),
            f"service_levels.{code}.first_answer_working_days",
        )
        resolution = _positive_int(
            entry.get("resolution_working_days"), f"service_levels.{code}.resolution_working_days"
        )
        if resolution < first:
            raise ValueError(
                f"service_levels.{code}: resolution_working_days ({resolution}) is shorter "
                f"than first_answer_working_days ({first})"
            )
        levels[category] = ServiceLevel(first, resolution)
    missing = [c.value for c in Category if c not in levels]
    if missing:
        raise ValueError(f"service_levels: no entry for {', '.join(missing)}")
    close_after = _positive_int(
        data.get("close_resolved_after_working_days", 5), "close_resolved_after_working_days"
    )
    return SupportConfig(version, frozenset(central), levels, close_after)


def route(category: Category, province: Province | None, config: SupportConfig) -> str:
    """The queue a new ticket goes to: the central desk for the categories it owns, else the
    hub that serves the province of the user's organisation (the central desk when the user
    has none)."""
    if category in config.central or province is None:
        return CENTRAL
    return hub_for_province(province).value
