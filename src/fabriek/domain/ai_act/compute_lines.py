"""A model version's compute levels and the lines they may cross.

Three measures of a model version's compute, kept apart:
- *training*: its own jobs whose purpose updates the model's parameters;
- *modification*: its own jobs whose purpose counts at all (training, and synthetic data
  that is not made public): its share of the cumulative compute, and what the one-third
  rule for a downstream modifier compares;
- *cumulative*: its modification plus every ancestor's through the base-model lineage
  (each ancestor once), plus external base models' declared compute."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from fabriek.domain.ai_act.figures import significant
from fabriek.domain.ai_act.model_rules import AiActRules, PurposeRule, Threshold
from fabriek.domain.ai_act.vocabulary import Measure, ModelRole
from fabriek.domain.units import Flop


@dataclass(frozen=True)
class ComputeLevels:
    """A version's three compute measures at one moment."""

    training: Flop = field(default_factory=Flop.zero)
    modification: Flop = field(default_factory=Flop.zero)
    cumulative: Flop = field(default_factory=Flop.zero)

    def of(self, measure: Measure) -> Flop:
        if measure is Measure.TRAINING:
            return self.training
        if measure is Measure.MODIFICATION:
            return self.modification
        return self.cumulative

    def plus(self, rule: PurposeRule, flop: Flop) -> ComputeLevels:
        """The levels after a job of this purpose adds `flop`."""
        return ComputeLevels(
            self.training + (flop if rule.training else Flop.zero()),
            self.modification + (flop if rule.cumulative else Flop.zero()),
            self.cumulative + (flop if rule.cumulative else Flop.zero()),
        )


@dataclass(frozen=True)
class BaseCompute:
    """What is known of the compute of a version's base model(s): None when unknown."""

    flop: Flop | None
    systemic_risk: bool = False


# One line a version's compute is watched against: a threshold of the rules, or the
# one-third line of a downstream modifier's base, which has a threshold's every part.
Line = Threshold


def lines_for(rules: AiActRules, role: ModelRole, base: BaseCompute | None) -> list[Line]:
    """The rules' thresholds, and for a downstream modifier of a base model the one-third
    line of that base's compute (of 1e23, or of 1e25 for a systemic-risk base, when the
    base's compute is unknown); lowest first."""
    lines = list(rules.thresholds)
    if role is ModelRole.DOWNSTREAM_MODIFIER and base is not None:
        m = rules.modifier
        if base.flop is not None:
            of, whose = base.flop, f"the base model's {significant(base.flop.value)} FLOP"
        elif base.systemic_risk:
            of, whose = (
                m.unknown_systemic_base_flop,
                "1e25 FLOP (systemic-risk base, compute unknown)",
            )
        else:
            of, whose = m.unknown_base_flop, "1e23 FLOP (base compute unknown)"
        lines.append(
            Line(
                "modifier-one-third",
                f"one third of {whose}",
                of * m.fraction,
                Measure.MODIFICATION,
                "a downstream modifier whose modification uses more than one third of the "
                "original model's training compute becomes the provider of the modified model, "
                "with the provider's duties for it",
                m.source,
            )
        )
    return sorted(lines, key=lambda line: (line.flop.value, line.code))


@dataclass(frozen=True)
class Crossing:
    """A line that compute crosses: below or at it before, above it after."""

    line: Line
    before: Flop
    after: Flop
    notify_by: date | None


def crossings(
    before: ComputeLevels, after: ComputeLevels, lines: Iterable[Line], now: datetime
) -> list[Crossing]:
    """The lines crossed going from `before` to `after` ("exceeds": above the line, not at
    it), lowest first; a line with a notification duty says by when (`now` + its days)."""
    out = []
    for line in lines:
        b, a = before.of(line.measure), after.of(line.measure)
        if b.value <= line.flop.value < a.value:
            notify_by = (
                (now + timedelta(days=line.notify_within_days)).date()
                if line.notify_within_days is not None
                else None
            )
            out.append(Crossing(line, b, a, notify_by))
    return sorted(out, key=lambda c: (c.line.flop.value, c.line.code))
