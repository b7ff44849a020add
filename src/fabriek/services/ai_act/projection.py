"""Projection of planned compute: what a proposal's requested, an allocation's awarded or
given GPU-hours would add in FLOP, and which lines that takes a model (or a new one) past.
Read-only."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.orm import Session

from fabriek.domain.access.tracks import AccessConfig
from fabriek.domain.ai_act.compute_lines import ComputeLevels, crossings, lines_for
from fabriek.domain.ai_act.compute_warning import ComputeWarning
from fabriek.domain.ai_act.estimates import RunCompute, hardware_estimate
from fabriek.domain.ai_act.models import (
    ComputeProjection,
    EstimateOut,
    LineProjection,
)
from fabriek.domain.ai_act.vocabulary import JobPurpose, ModelRole
from fabriek.domain.errors import InvalidInput
from fabriek.domain.gpus import GPU_TYPES
from fabriek.domain.roles import Principal
from fabriek.domain.units import GpuSeconds
from fabriek.services.access.allocations import get_allocation
from fabriek.services.access.proposals import get_proposal
from fabriek.services.ai_act.ledger import version_lines, version_state, with_commitments
from fabriek.services.ai_act.registry import version_row
from fabriek.services.ai_act.rules import ai_act_rules


def projection(
    session: Session,
    who: Principal,
    now: datetime,
    gpu_hours: Mapping[str, float],
    source: str,
    model_ref: str | None = None,
    mfu: float | None = None,
    purpose: JobPurpose = JobPurpose.PRE_TRAINING,
) -> ComputeProjection:
    """What `gpu_hours` (raw, per GPU type; `any` for no type) would add in FLOP, at `mfu`
    or the default utilisation, and which lines that takes a model (or a new one) past."""
    rules = ai_act_rules()
    for gpu_type, hours in gpu_hours.items():
        if hours < 0:
            raise InvalidInput.on("gpu_hours", f"{gpu_type}: GPU-hours cannot be negative")
    estimate = hardware_estimate(
        [RunCompute(None if t == "any" else t, GpuSeconds(h * 3600), mfu)
         for t, h in gpu_hours.items()],
        rules.estimation,
    )  # fmt: skip
    if model_ref is not None:
        version, model, project = version_row(session, who, model_ref)
        state = version_state(session, version, model, project, now)
        before = with_commitments(session, state, now)
        lines = version_lines(state)
        ref: str | None = state.ref
    else:
        before, lines, ref = ComputeLevels(), lines_for(rules, ModelRole.PROVIDER, None), None
    after = before.plus(rules.purpose(purpose), estimate.flop)
    crossed = crossings(before, after, lines, now)
    figures = rules.estimation.significant_figures
    return ComputeProjection(
        gpu_hours=dict(gpu_hours), source=source, purpose=purpose,
        planned=EstimateOut.of(estimate, figures), model=ref,
        before_flop=before.cumulative.value,
        lines=[
            LineProjection(
                code=line.code, label=line.label, line_flop=line.flop.value,
                measure=line.measure, after_flop=after.of(line.measure).value,
                fraction=after.of(line.measure) / line.flop,
                crossed=any(c.line.code == line.code for c in crossed),
                exceeded=after.of(line.measure).value > line.flop.value,
            )
            for line in lines
        ],
        warnings=[ComputeWarning.of(c, ref or "a new model", figures) for c in crossed],
    )  # fmt: skip


def planned_projection(
    session: Session,
    who: Principal,
    now: datetime,
    access: AccessConfig,
    *,
    proposal_id: int | None = None,
    allocation_id: int | None = None,
    gpu_type: str | None = None,
    gpu_hours: float | None = None,
    model_ref: str | None = None,
    mfu: float | None = None,
    purpose: JobPurpose = JobPurpose.PRE_TRAINING,
) -> ComputeProjection:
    """A proposal's requested, an allocation's awarded, or given GPU-hours, projected as
    FLOP against the lines (read-only: nothing is written)."""
    if sum(x is not None for x in (proposal_id, allocation_id, gpu_hours)) != 1:
        raise InvalidInput.on(
            "gpu_hours", "give one of: proposal, allocation, or gpu_hours (with gpu_type)"
        )
    if proposal_id is not None:
        hours = dict(get_proposal(session, who, proposal_id, access, now).requested)
        source = f"proposal {proposal_id}: GPU-hours requested"
    elif allocation_id is not None:
        hours = dict(get_allocation(session, who, now, access, allocation_id).awarded_raw)
        source = f"allocation {allocation_id}: GPU-hours awarded"
    else:
        kind = (gpu_type or "any").strip().lower()
        if kind != "any" and kind not in GPU_TYPES:
            known = ", ".join([*GPU_TYPES, "any"])
            raise InvalidInput.on("gpu_type", f"no GPU type {gpu_type!r}; known: {known}")
        hours = {kind: float(gpu_hours or 0.0)}
        source = "GPU-hours given"
    return projection(session, who, now, hours, source, model_ref, mfu, purpose)
