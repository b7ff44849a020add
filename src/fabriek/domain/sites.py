"""Sites: a data centre with one cluster, its nodes and the GPUs in them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Jurisdiction(StrEnum):
    """Whose law the site's data falls under: the Netherlands, or another EU/EEA state."""

    NL = "nl"
    EU = "eu"


@dataclass(frozen=True)
class NodeGroup:
    """Identical nodes of a site: `count` nodes, each with the same GPUs, CPUs and memory."""

    name: str
    count: int
    gpu_type: str | None
    gpus_per_node: int
    cpus_per_node: int
    memory_gb_per_node: int


def gpu_inventory(groups: list[NodeGroup]) -> dict[str, int]:
    """GPUs of a site by type: the sum over its node groups."""
    totals: dict[str, int] = {}
    for g in groups:
        if g.gpu_type and g.gpus_per_node:
            totals[g.gpu_type] = totals.get(g.gpu_type, 0) + g.count * g.gpus_per_node
    return totals


_SLUG = re.compile(r"^[a-z][a-z0-9-]{1,62}$")


def is_slug(name: str) -> bool:
    """Names that appear in URLs and commands: lowercase letters, digits and dashes."""
    return bool(_SLUG.fullmatch(name))
