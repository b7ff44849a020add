"""The warning a job gets when it is projected to take its model past a compute line of
the EU AI Act: what the API answers with a submitted job, and what the CLI shows.

Apart from the model registry's shapes (`models`) so that every job's values, on the
client too, load no AI Act rules to carry it."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from fabriek.domain.ai_act.figures import significant
from fabriek.domain.ai_act.vocabulary import Measure

if TYPE_CHECKING:
    from fabriek.domain.ai_act.compute_lines import Crossing


class ComputeWarning(BaseModel):
    """A line a submitted job is projected to take its model past."""

    line: str = Field(description="the line's code, e.g. gpai-indicative")
    label: str
    line_flop: float
    measure: Measure
    before_flop: float
    after_flop: float
    message: str
    meaning: str
    source: str
    requires_acknowledgement: bool
    notify_commission_by: date | None = None

    @classmethod
    def of(cls, crossing: Crossing, model: str, figures: int = 2) -> ComputeWarning:
        line = crossing.line
        message = (
            f"{model}: this job is projected to take the model's {line.measure.value} compute "
            f"from {significant(crossing.before.value, figures)} to "
            f"{significant(crossing.after.value, figures)} FLOP, past the {line.label} "
            f"({significant(line.flop.value, figures)} FLOP; {line.source})"
        )
        if crossing.notify_by is not None:
            message += f"; notify the Commission by {crossing.notify_by:%Y-%m-%d}"
        return cls(
            line=line.code, label=line.label, line_flop=line.flop.value, measure=line.measure,
            before_flop=crossing.before.value, after_flop=crossing.after.value,
            message=message, meaning=line.meaning, source=line.source,
            requires_acknowledgement=line.acknowledge, notify_commission_by=crossing.notify_by,
        )  # fmt: skip
