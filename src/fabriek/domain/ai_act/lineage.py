"""The lineage of model versions through their base models: a model cannot descend from
itself, and its cumulative compute counts every ancestor once."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

from fabriek.domain.errors import Conflict, FieldProblem


class LineageCycle(Conflict):
    """A base-model link would make a model its own ancestor."""

    def __init__(self, path: Sequence[str], field_name: str = "bases") -> None:
        detail = f"{field_name}: a model cannot descend from itself: {' -> '.join(path)}"
        super().__init__(detail)
        self.code = "lineage-cycle"
        self.problems = [FieldProblem(field_name, detail.split(": ", 1)[1])]


_N = TypeVar("_N", bound=Hashable)


def find_cycle(graph: Mapping[_N, Sequence[_N]], start: _N) -> list[_N] | None:
    """A path start -> ... -> start through `graph` (version -> its bases), or None."""
    stack: list[tuple[_N, list[_N]]] = [(start, [start])]
    seen: set[_N] = set()
    while stack:
        node, path = stack.pop()
        for base in graph.get(node, ()):
            if base == start:
                return [*path, start]
            if base not in seen:
                seen.add(base)
                stack.append((base, [*path, base]))
    return None


def ancestors(graph: Mapping[_N, Sequence[_N]], start: _N) -> list[_N]:
    """Every version `start` descends from, each once, nearest first. A cycle reached on
    the way raises LineageCycle (the store never holds one; this guards reading)."""
    if (cycle := find_cycle(graph, start)) is not None:
        raise LineageCycle([str(v) for v in cycle])
    order: list[_N] = []
    seen = {start}
    frontier = list(graph.get(start, ()))
    while frontier:
        following: list[_N] = []
        for node in frontier:
            if node in seen:
                continue
            seen.add(node)
            order.append(node)
            following.extend(graph.get(node, ()))
        frontier = following
    return order
