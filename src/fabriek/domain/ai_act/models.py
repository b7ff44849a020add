"""What the API of the AI model registry exchanges: drafts of models, versions, base
models and job reports; the registry's views; compute estimates, warnings and projections;
the rules as published."""

from __future__ import annotations

import re
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fabriek.domain.ai_act.compute_warning import ComputeWarning
from fabriek.domain.ai_act.estimates import Estimate
from fabriek.domain.ai_act.figures import significant
from fabriek.domain.ai_act.model_rules import AiActRules
from fabriek.domain.ai_act.vocabulary import (
    Architecture,
    JobPurpose,
    Measure,
    Method,
    Modality,
    ModelRole,
    Openness,
)
from fabriek.domain.errors import Conflict, FieldProblem
from fabriek.domain.inputs import Id

_NAME = r"^[a-z0-9][a-z0-9._-]{0,62}$"
# Paths under /models that are not model names.
RESERVED_NAMES = frozenset({"projection", "reports", "rules"})
_VERSION = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,39}$"


def split_ref(ref: str, field_name: str = "model") -> tuple[str, str]:
    """NAME:VERSION into its parts; a ValueError says what the form is."""
    name, sep, version = ref.strip().partition(":")
    if not sep or not re.fullmatch(_NAME, name) or not re.fullmatch(_VERSION, version):
        raise ValueError(f"{field_name}: {ref!r} is not NAME:VERSION, e.g. gpt-nl:1.0")
    return name, version


class BaseModelDraft(BaseModel):
    """A base model a version was fine-tuned or merged from: a version registered here
    (`model` as NAME:VERSION), or an external one by name with its training compute if
    known (None: unknown) and whether it is a systemic-risk model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = Field(default=None, description="NAME:VERSION of a registered version")
    external: str | None = Field(
        default=None, min_length=1, max_length=200, description="an external model's name"
    )
    training_flop: float | None = Field(
        default=None, gt=0, le=1e32, description="the external model's training compute, FLOP"
    )
    systemic_risk: bool = Field(default=False, description="the external model has systemic risk")

    @model_validator(mode="after")
    def _one(self) -> BaseModelDraft:
        if (self.model is None) == (self.external is None):
            raise ValueError("give exactly one of 'model' (NAME:VERSION) and 'external'")
        if self.model is not None:
            split_ref(self.model)
            if self.training_flop is not None or self.systemic_risk:
                raise ValueError(
                    "a registered base's compute comes from its own ledger; "
                    "give training_flop and systemic_risk only for an external base"
                )
        return self


class ModelVersionDraft(BaseModel):
    """A version of a model. Parameters and tokens are counts (not billions)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(pattern=_VERSION, description="e.g. 1.0")
    parameters: int | None = Field(default=None, gt=0, description="total parameter count")
    active_parameters: int | None = Field(
        default=None, gt=0, description="parameters active per token (mixture of experts)"
    )
    training_tokens: int | None = Field(
        default=None, ge=0, description="tokens trained on, where known"
    )
    architecture: Architecture = Architecture.DENSE_TRANSFORMER
    release_date: date | None = None
    distribution: str | None = Field(
        default=None, max_length=500, description="how it is distributed: API, weights, ..."
    )
    bases: list[BaseModelDraft] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _active(self) -> ModelVersionDraft:
        if (
            self.active_parameters is not None
            and self.parameters is not None
            and self.active_parameters > self.parameters
        ):
            raise ValueError("active_parameters cannot exceed parameters")
        return self


class ModelDraft(BaseModel):
    """A model a project registers: who provides it, in what role, for what."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME, description="unique in the factory, e.g. gpt-nl")
    project: str = Field(description="project name or id")
    title: str = Field(default="", max_length=200)
    provider: str = Field(min_length=2, max_length=200, description="the legal entity")
    role: ModelRole = ModelRole.PROVIDER
    intended_purpose: str = Field(default="", max_length=10_000)
    licence: str | None = Field(default=None, max_length=200, description="e.g. Apache-2.0")
    openness: Openness = Openness.CLOSED
    monetised: bool = Field(default=False, description="placed on the market against payment")
    input_modalities: list[Modality] = Field(default_factory=lambda: [Modality.TEXT])
    output_modalities: list[Modality] = Field(default_factory=lambda: [Modality.TEXT])
    first_version: ModelVersionDraft | None = Field(
        default=None, description="register the first version with the model"
    )

    @field_validator("name")
    @classmethod
    def _not_a_route(cls, value: str) -> str:
        if value in RESERVED_NAMES:
            raise ValueError(f"{value!r} is a word the API uses; choose another name")
        return value

    @field_validator("input_modalities", "output_modalities")
    @classmethod
    def _some(cls, value: list[Modality]) -> list[Modality]:
        if not value:
            raise ValueError("name at least one modality")
        return list(dict.fromkeys(value))


class BaseModelOut(BaseModel):
    model: str | None
    external: str | None
    training_flop: float | None
    systemic_risk: bool


class ModelVersion(BaseModel):
    model: str
    version: str
    ref: str = Field(description="NAME:VERSION")
    parameters: int | None
    active_parameters: int | None
    training_tokens: int | None
    architecture: Architecture
    release_date: date | None
    distribution: str | None
    bases: list[BaseModelOut]
    jobs: int = Field(description="jobs linked to this version")
    created_at: datetime


class Model(BaseModel):
    id: int
    name: str
    project: str
    title: str
    provider: str
    role: ModelRole
    intended_purpose: str
    licence: str | None
    openness: Openness
    monetised: bool
    open_source_exemption: bool = Field(
        description="Art. 53(2) may exempt it from Annex XI and XII documentation (never "
        "for a systemic-risk model)"
    )
    input_modalities: list[Modality]
    output_modalities: list[Modality]
    versions: list[str]
    created_at: datetime


class ModelDetail(Model):
    version_details: list[ModelVersion]


def open_source_exemption(openness: Openness, monetised: bool, systemic_risk: bool) -> bool:
    """Art. 53(2): open weights under a licence allowing use, modification and
    redistribution, not monetised, and not a systemic-risk model."""
    return openness is Openness.OPEN_SOURCE and not monetised and not systemic_risk


class JobReportDraft(BaseModel):
    """What a running or finished job reports of itself: its model FLOP utilisation (the
    model's FLOP per second over the GPUs' dense BF16 peak, averaged over the run) and/or
    the training tokens it processed. A later report replaces an earlier one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: Id
    mfu: float | None = Field(default=None, gt=0, le=1, description="0 < MFU <= 1")
    tokens: int | None = Field(default=None, ge=0, description="training tokens processed")

    @model_validator(mode="after")
    def _something(self) -> JobReportDraft:
        if self.mfu is None and self.tokens is None:
            raise ValueError("report 'mfu', 'tokens' or both")
        return self


class JobReport(BaseModel):
    job_id: int
    model: str
    purpose: JobPurpose
    mfu: float | None
    tokens: int | None
    reported_by: str
    reported_at: datetime


class EstimateOut(BaseModel):
    """An estimate as the API shows it: FLOP to two significant figures with the method."""

    method: Method
    flop: float
    low_flop: float
    high_flop: float
    text: str = Field(description="e.g. 6.6e23 FLOP (hardware-based, 5.3e23-7.9e23)")
    assumptions: list[str]

    @classmethod
    def of(cls, estimate: Estimate, figures: int = 2) -> EstimateOut:
        return cls(
            method=estimate.method,
            flop=estimate.flop.value,
            low_flop=estimate.low.value,
            high_flop=estimate.high.value,
            text=(
                f"{significant(estimate.flop.value, figures)} FLOP ({estimate.method.value}, "
                f"{significant(estimate.low.value, figures)}-"
                f"{significant(estimate.high.value, figures)})"
            ),
            assumptions=list(estimate.assumptions),
        )


class AcknowledgementRequired(Conflict):
    """A job would take its model past the systemic-risk line: it is queued only when the
    submission acknowledges that (HTTP 409), and the answer says by when to notify."""

    def __init__(self, warning: ComputeWarning) -> None:
        super().__init__(
            f"{warning.message}. Systemic risk is then presumed ({warning.source}): resubmit "
            "with acknowledge_systemic_risk set to true (fabriek run/submit "
            "--acknowledge-systemic-risk) to confirm you will notify the Commission"
            + (
                f" by {warning.notify_commission_by:%Y-%m-%d}"
                if warning.notify_commission_by
                else ""
            )
        )
        self.code = "acknowledgement-required"
        self.problems = [
            FieldProblem(
                "acknowledge_systemic_risk",
                "must be true for a job that takes its model past the systemic-risk line",
            )
        ]


class ThresholdOut(BaseModel):
    code: str
    label: str
    flop: float
    measure: Measure
    meaning: str
    source: str
    requires_acknowledgement: bool
    notify_within_days: int | None


class PurposeOut(BaseModel):
    purpose: JobPurpose
    counts_as_training: bool
    counts_as_cumulative: bool
    source: str


class KeyDateOut(BaseModel):
    on: date
    what: str
    source: str


class RulesOut(BaseModel):
    """The AI Act rules Fabriek applies, with their sources (from the shipped data file)."""

    version: str
    regulation: str
    thresholds: list[ThresholdOut]
    modifier_fraction: float
    modifier_source: str
    purposes: list[PurposeOut]
    default_utilisation: float
    utilisation_band: tuple[float, float]
    utilisation_source: str
    architecture_factor: float
    architecture_source: str
    dates: list[KeyDateOut]

    @classmethod
    def of(cls, rules: AiActRules) -> RulesOut:
        e = rules.estimation
        return cls(
            version=rules.version, regulation=rules.regulation,
            thresholds=[
                ThresholdOut(code=t.code, label=t.label, flop=t.flop.value, measure=t.measure,
                             meaning=t.meaning, source=t.source,
                             requires_acknowledgement=t.acknowledge,
                             notify_within_days=t.notify_within_days)
                for t in rules.thresholds
            ],
            modifier_fraction=rules.modifier.fraction, modifier_source=rules.modifier.source,
            purposes=[
                PurposeOut(purpose=p.purpose, counts_as_training=p.training,
                           counts_as_cumulative=p.cumulative, source=p.source)
                for p in rules.purposes.values()
            ],
            default_utilisation=e.default_utilisation,
            utilisation_band=(e.utilisation_low, e.utilisation_high),
            utilisation_source=e.utilisation_source,
            architecture_factor=e.architecture_factor,
            architecture_source=e.architecture_source,
            dates=[KeyDateOut(on=d.on, what=d.what, source=d.source) for d in rules.dates],
        )  # fmt: skip


class LineProjection(BaseModel):
    code: str
    label: str
    line_flop: float
    measure: Measure
    after_flop: float
    fraction: float = Field(description="after / line")
    crossed: bool = Field(description="the planned compute takes the model past it")
    exceeded: bool = Field(description="past it after the planned compute")


class ComputeProjection(BaseModel):
    """Planned GPU-hours as FLOP, against the AI Act's compute lines."""

    gpu_hours: dict[str, float] = Field(description="raw GPU-hours per GPU type planned")
    source: str = Field(description="where the GPU-hours come from")
    purpose: JobPurpose
    planned: EstimateOut
    model: str | None
    before_flop: float = Field(description="the model's cumulative compute now (0: none)")
    lines: list[LineProjection]
    warnings: list[ComputeWarning]
