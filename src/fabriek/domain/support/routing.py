"""Where a ticket goes: the queues (the hubs' and the central desk's), the support
configuration that says who owns which category and what each promises, and the routing
rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from fabriek.domain.config_files import FileTable, read_table
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


def _positive_int(value: int, where: str) -> int:
    if value < 0:
        raise ValueError(f"{where} must be a whole number of working days, 0 or more")
    return value


class _LevelTable(FileTable):
    first_answer_working_days: int
    resolution_working_days: int


class _RoutingTable(FileTable):
    central: list[str] = []


class _SupportFile(FileTable):
    """The shape of support.toml (docs/support.md explains each key)."""

    version: str
    close_resolved_after_working_days: int = 5
    routing: _RoutingTable = _RoutingTable()
    service_levels: dict[str, _LevelTable]


def parse_support_config(data: Mapping[str, Any]) -> SupportConfig:
    """Check and read a parsed support.toml; ValueError names the entry at fault."""
    file = read_table(_SupportFile, data)
    if not file.version:
        raise ValueError("version: give the file's version as a string, e.g. '2026-11'")
    central: set[Category] = set()
    for code in file.routing.central:
        try:
            central.add(Category(code))
        except ValueError:
            raise ValueError(
                f"routing.central: no category {code!r}; known: {', '.join(Category)}"
            ) from None
    levels: dict[Category, ServiceLevel] = {}
    for code, entry in file.service_levels.items():
        try:
            category = Category(code)
        except ValueError:
            raise ValueError(
                f"service_levels.{code}: no such category; known: {', '.join(Category)}"
            ) from None
        first = _positive_int(
            entry.first_answer_working_days, f"service_levels.{code}.first_answer_working_days"
        )
        resolution = _positive_int(
            entry.resolution_working_days, f"service_levels.{code}.resolution_working_days"
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
        file.close_resolved_after_working_days, "close_resolved_after_working_days"
    )
    return SupportConfig(file.version, frozenset(central), levels, close_after)


def route(category: Category, province: Province | None, config: SupportConfig) -> str:
    """The queue a new ticket goes to: the central desk for the categories it owns, else the
    hub that serves the province of the user's organisation (the central desk when the user
    has none)."""
    if category in config.central or province is None:
        return CENTRAL
    return hub_for_province(province).value
