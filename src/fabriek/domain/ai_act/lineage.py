"""The lineage of model versions through their base models: a model cannot descend from
itself, and its cumulative compute counts every ancestor once (`lineage_sum`), external base
models at the compute their providers declared."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from fabriek.domain.ai_act.estimates import Estimate
from fabriek.domain.ai_act.figures import significant
from fabriek.domain.ai_act.vocabulary import Method
from fabriek.domain.errors import Conflict, FieldProblem
from fabriek.domain.units import Flop


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


Node = int | str  # a registered version's id, or "external:<name>"


@dataclass(frozen=True)
class LineageNode:
    """One model in a lineage: its own compute (None: unknown) and what to call it."""

    name: str
    own: Estimate | None
    external: bool
    systemic_risk: bool = False


@dataclass(frozen=True)
class LineageSum:
    """The compute of a set of models and all they descend from, each counted once."""

    estimate: Estimate
    known: bool
    systemic_risk: bool
    members: tuple[Node, ...] = ()


def lineage_sum(
    roots: Iterable[Node], graph: Mapping[Node, Sequence[Node]], nodes: Mapping[Node, LineageNode]
) -> LineageSum:
    """The roots and every ancestor, each once: their own compute summed (an unknown one
    makes the sum incomplete), and whether any is an external systemic-risk model. A cycle
    raises LineageCycle."""
    order: list[Node] = []
    seen: set[Node] = set()
    frontier = list(roots)
    while frontier:
        node = frontier.pop(0)
        if node in seen:
            continue
        seen.add(node)
        order.append(node)
        frontier.extend(graph.get(node, ()))
    for node in order:
        if (cycle := find_cycle(graph, node)) is not None:
            raise LineageCycle([nodes[n].name if n in nodes else str(n) for n in cycle])
    total = Estimate.none(Method.HARDWARE)
    known, systemic = True, False
    for node in order:
        entry = nodes.get(node)
        if entry is None or entry.own is None:
            known = False
        else:
            total = total + entry.own
        systemic = systemic or bool(entry and entry.systemic_risk)
    return LineageSum(total, known, systemic, tuple(order))


def declared(name: str, flop: float | None, systemic_risk: bool) -> LineageNode:
    """An external base model as its provider declared it."""
    own = (
        Estimate(
            Method.HARDWARE, Flop(flop), Flop(flop), Flop(flop),
            (f"{name}: {significant(flop)} FLOP as declared for the external base model",),
        )
        if flop is not None
        else None
    )  # fmt: skip
    return LineageNode(name, own, True, systemic_risk)
