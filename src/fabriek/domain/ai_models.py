"""AI models under the EU AI Act: the registry's values, what compute counts, how it is
estimated, the lineage through base models, and the compute lines a model may cross.

Pure rules over typed values. The rules' content (thresholds, which job purposes count,
estimation defaults, documentation fields, dates) is data, `fabriek/config/ai_act.toml`,
parsed here by `parse_ai_act_rules` into `AiActRules`; nothing here reads a file or a
clock: moments come in as arguments.

Three measures of a model version's compute, kept apart:
- *training*: its own jobs whose purpose updates the model's parameters;
- *modification*: its own jobs whose purpose counts at all (training, and synthetic data
  that is not made public): its share of the cumulative compute, and what the one-third
  rule for a downstream modifier compares;
- *cumulative*: its modification plus every ancestor's through the base-model lineage
  (each ancestor once), plus external base models' declared compute.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fabriek.domain.errors import Conflict, FieldProblem
from fabriek.domain.gpus import GPU_TYPES
from fabriek.domain.units import Flop, FlopPerSecond, GpuSeconds

# --- vocabulary ---------------------------------------------------------------------------


class ModelRole(StrEnum):
    """What the registering project is for this model under the Act."""

    PROVIDER = "provider"
    # Fine-tunes or otherwise modifies someone else's model (Guidelines §3.2).
    DOWNSTREAM_MODIFIER = "downstream-modifier"
    # Uses the model in an AI system under its own authority (Art. 3(4)).
    DEPLOYER = "deployer"


class Openness(StrEnum):
    """How the model is released: what decides the Art. 53(2) open-source exemption."""

    CLOSED = "closed"
    # Weights published, but the licence restricts use, modification or redistribution.
    OPEN_WEIGHTS = "open-weights"
    # Weights published under a licence that allows use, modification and redistribution.
    OPEN_SOURCE = "open-source"


class Modality(StrEnum):
    TEXT = "text"
    CODE = "code"
    SPEECH = "speech"
    AUDIO = "audio"
    IMAGE = "image"
    VIDEO = "video"
    TABULAR = "tabular"
    TIME_SERIES = "time-series"
    OTHER = "other"


class Architecture(StrEnum):
    DENSE_TRANSFORMER = "dense-transformer"
    MIXTURE_OF_EXPERTS = "mixture-of-experts"
    OTHER = "other"


class JobPurpose(StrEnum):
    """Why a job ran for a model: the Guidelines count some purposes and not others (which
    is data: `AiActRules.purposes`)."""

    PRE_TRAINING = "pre-training"
    FINE_TUNING = "fine-tuning"
    SYNTHETIC_DATA_PRIVATE = "synthetic-data-private"
    SYNTHETIC_DATA_PUBLIC = "synthetic-data-public"
    EVALUATION = "evaluation"
    EXPLORATORY_RESEARCH = "exploratory-research"
    REWARD_MODEL = "reward-model"


class Measure(StrEnum):
    """Which of a version's compute figures a line compares (see the module)."""

    TRAINING = "training"
    MODIFICATION = "modification"
    CUMULATIVE = "cumulative"


class Method(StrEnum):
    HARDWARE = "hardware-based"
    ARCHITECTURE = "architecture-based"


class Audience(StrEnum):
    """Who a documentation field is for (the Code of Practice's Model Documentation Form)."""

    AI_OFFICE = "ai-office"
    NATIONAL_AUTHORITY = "national-authority"
    DOWNSTREAM_PROVIDER = "downstream-provider"


class DocSection(StrEnum):
    ANNEX_XI_1 = "annex-xi-1"
    ANNEX_XI_2 = "annex-xi-2"
    ANNEX_XII = "annex-xii"


# The figures Fabriek fills documentation fields with; any other field is the provider's.
PROVIDER_FILL = "provider"
LEDGER_FILLS = frozenset(
    {
        "intended_purpose", "release", "architecture", "modalities", "licence",
        "data_residency", "training_compute", "training_time", "hardware", "energy",
    }
)  # fmt: skip


# --- the rules, as data -------------------------------------------------------------------


@dataclass(frozen=True)
class PurposeRule:
    purpose: JobPurpose
    training: bool
    cumulative: bool
    source: str


@dataclass(frozen=True)
class Threshold:
    """A compute line from the rules: crossing it is warned about at submission."""

    code: str
    label: str
    flop: Flop
    measure: Measure
    meaning: str
    source: str
    acknowledge: bool = False
    notify_within_days: int | None = None


@dataclass(frozen=True)
class ModifierRule:
    fraction: float
    unknown_base_flop: Flop
    unknown_systemic_base_flop: Flop
    source: str


@dataclass(frozen=True)
class Estimation:
    default_utilisation: float
    utilisation_low: float
    utilisation_high: float
    utilisation_source: str
    measured_uncertainty: float
    measured_source: str
    architecture_factor: float
    architecture_uncertainty: float
    architecture_source: str
    allowed_error: float
    allowed_error_source: str
    significant_figures: int


@dataclass(frozen=True)
class Limits:
    max_parameters: float
    max_training_tokens: float
    source: str


@dataclass(frozen=True)
class DocField:
    key: str
    section: DocSection
    label: str
    fill: str
    audiences: tuple[Audience, ...]
    source: str


@dataclass(frozen=True)
class KeyDate:
    on: date
    what: str
    source: str


@dataclass(frozen=True)
class AiActRules:
    """Everything the AI Act rules read from configuration."""

    version: str
    regulation: str
    estimation: Estimation
    limits: Limits
    modifier: ModifierRule
    thresholds: tuple[Threshold, ...]
    purposes: Mapping[JobPurpose, PurposeRule]
    documentation: tuple[DocField, ...]
    dates: tuple[KeyDate, ...]

    def purpose(self, purpose: JobPurpose) -> PurposeRule:
        return self.purposes[purpose]

    def systemic_line(self) -> Threshold | None:
        """The line past which a submission needs an acknowledgement."""
        return next((t for t in self.thresholds if t.acknowledge), None)


def _need(table: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in table:
        raise ValueError(f"{where}: missing '{key}'")
    return table[key]


def _number(table: Mapping[str, Any], key: str, where: str, low: float, high: float) -> float:
    value = _need(table, key, where)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}.{key}: must be a number")
    if not low <= value <= high or math.isnan(value):
        raise ValueError(f"{where}.{key}: must be between {low:g} and {high:g}, not {value:g}")
    return float(value)


def _text(table: Mapping[str, Any], key: str, where: str) -> str:
    value = _need(table, key, where)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}.{key}: must be a non-empty text")
    return value


_E = TypeVar("_E", bound=StrEnum)


def _enum(kind: type[_E], value: Any, where: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        known = ", ".join(k.value for k in kind)
        raise ValueError(f"{where}: {value!r} is not one of {known}") from None


def _thresholds(entries: Sequence[Mapping[str, Any]]) -> tuple[Threshold, ...]:
    raw: dict[str, Mapping[str, Any]] = {}
    for i, entry in enumerate(entries):
        code = _text(entry, "code", f"thresholds[{i}]")
        if code in raw:
            raise ValueError(f"threshold {code!r}: defined twice")
        raw[code] = entry

    def flop_of(code: str, seen: tuple[str, ...]) -> float:
        entry, where = raw[code], f"threshold {code!r}"
        if code in seen:
            raise ValueError(f"{where}: 'of' goes round in a circle ({' -> '.join(seen)})")
        if "flop" in entry:
            return _number(entry, "flop", where, 1.0, 1e40)
        base = _text(entry, "of", where)
        if base not in raw:
            raise ValueError(f"{where}: 'of' names no threshold {base!r}")
        return _number(entry, "fraction", where, 1e-6, 1.0) * flop_of(base, (*seen, code))

    out = []
    for code, entry in raw.items():
        where = f"threshold {code!r}"
        days = entry.get("notify_within_days")
        if days is not None and (not isinstance(days, int) or days < 1):
            raise ValueError(f"{where}.notify_within_days: must be a whole number of days")
        out.append(
            Threshold(
                code=code,
                label=_text(entry, "label", where),
                flop=Flop(flop_of(code, ())),
                measure=_enum(Measure, _need(entry, "measure", where), f"{where}.measure"),
                meaning=_text(entry, "meaning", where),
                source=_text(entry, "source", where),
                acknowledge=bool(entry.get("acknowledge", False)),
                notify_within_days=days,
            )
        )
    if sum(t.acknowledge for t in out) > 1:
        raise ValueError("thresholds: only one line may require an acknowledgement")
    return tuple(sorted(out, key=lambda t: (t.flop.value, t.code)))


def parse_ai_act_rules(data: Mapping[str, Any]) -> AiActRules:
    """`AiActRules` from the parsed TOML; a ValueError names the first bad entry."""
    est = dict(_need(data, "estimation", "the file"))
    where = "estimation"
    estimation = Estimation(
        default_utilisation=_number(est, "default_utilisation", where, 0.01, 1.0),
        utilisation_low=_number(est, "utilisation_low", where, 0.01, 1.0),
        utilisation_high=_number(est, "utilisation_high", where, 0.01, 1.0),
        utilisation_source=_text(est, "utilisation_source", where),
        measured_uncertainty=_number(est, "measured_uncertainty", where, 0.0, 1.0),
        measured_source=_text(est, "measured_source", where),
        architecture_factor=_number(est, "architecture_factor", where, 1.0, 100.0),
        architecture_uncertainty=_number(est, "architecture_uncertainty", where, 0.0, 1.0),
        architecture_source=_text(est, "architecture_source", where),
        allowed_error=_number(est, "allowed_error", where, 0.0, 1.0),
        allowed_error_source=_text(est, "allowed_error_source", where),
        significant_figures=int(_number(est, "significant_figures", where, 1, 6)),
    )
    if not (
        estimation.utilisation_low <= estimation.default_utilisation <= estimation.utilisation_high
    ):
        raise ValueError("estimation: utilisation_low <= default_utilisation <= utilisation_high")
    lim = dict(_need(data, "limits", "the file"))
    limits = Limits(
        max_parameters=_number(lim, "max_parameters", "limits", 1.0, 1e20),
        max_training_tokens=_number(lim, "max_training_tokens", "limits", 1.0, 1e20),
        source=_text(lim, "source", "limits"),
    )
    mod = dict(_need(data, "modifier", "the file"))
    modifier = ModifierRule(
        fraction=_number(mod, "fraction", "modifier", 1e-6, 1.0),
        unknown_base_flop=Flop(_number(mod, "unknown_base_flop", "modifier", 1.0, 1e40)),
        unknown_systemic_base_flop=Flop(
            _number(mod, "unknown_systemic_base_flop", "modifier", 1.0, 1e40)
        ),
        source=_text(mod, "source", "modifier"),
    )
    purposes: dict[JobPurpose, PurposeRule] = {}
    for i, entry in enumerate(_need(data, "purposes", "the file")):
        where = f"purposes[{i}]"
        purpose = _enum(JobPurpose, _need(entry, "code", where), f"{where}.code")
        if purpose in purposes:
            raise ValueError(f"purpose {purpose.value!r}: defined twice")
        purposes[purpose] = PurposeRule(
            purpose,
            training=bool(_need(entry, "training", where)),
            cumulative=bool(_need(entry, "cumulative", where)),
            source=_text(entry, "source", where),
        )
        if purposes[purpose].training and not purposes[purpose].cumulative:
            raise ValueError(f"purpose {purpose.value!r}: training compute is also cumulative")
    missing = [p.value for p in JobPurpose if p not in purposes]
    if missing:
        raise ValueError(f"purposes: no rule for {', '.join(missing)}")
    docs = []
    for i, entry in enumerate(_need(data, "documentation", "the file")):
        where = f"documentation[{i}]"
        key = _text(entry, "key", where)
        fill = _text(entry, "fill", where)
        if fill != PROVIDER_FILL and fill not in LEDGER_FILLS:
            known = ", ".join(sorted(LEDGER_FILLS))
            raise ValueError(f"{where}.fill: {fill!r} is 'provider' or one of {known}")
        audiences = tuple(
            _enum(Audience, a, f"{where}.audiences") for a in _need(entry, "audiences", where)
        )
        if not audiences:
            raise ValueError(f"{where}.audiences: name at least one audience")
        docs.append(
            DocField(
                key=key,
                section=_enum(DocSection, _need(entry, "section", where), f"{where}.section"),
                label=_text(entry, "label", where),
                fill=fill,
                audiences=audiences,
                source=_text(entry, "source", where),
            )
        )
    if len({d.key for d in docs}) != len(docs):
        raise ValueError("documentation: a key is defined twice")
    dates = []
    for i, entry in enumerate(data.get("dates", [])):
        where = f"dates[{i}]"
        on = _need(entry, "date", where)
        if not isinstance(on, date) or isinstance(on, datetime):
            raise ValueError(f"{where}.date: must be a TOML date like 2026-08-02")
        dates.append(KeyDate(on, _text(entry, "what", where), _text(entry, "source", where)))
    return AiActRules(
        version=_text(data, "version", "the file"),
        regulation=_text(data, "regulation", "the file"),
        estimation=estimation,
        limits=limits,
        modifier=modifier,
        thresholds=_thresholds(_need(data, "thresholds", "the file")),
        purposes=purposes,
        documentation=tuple(docs),
        dates=tuple(sorted(dates, key=lambda d: d.on)),
    )


# --- estimates ----------------------------------------------------------------------------


def significant(value: float, figures: int = 2) -> str:
    """`value` to `figures` significant figures in scientific notation: 6.6e23."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    mantissa, exponent = f"{value:.{figures - 1}e}".split("e")
    return f"{mantissa}e{int(exponent)}"


@dataclass(frozen=True)
class Estimate:
    """A compute estimate with its method, assumptions and uncertainty band."""

    method: Method
    flop: Flop
    low: Flop
    high: Flop
    assumptions: tuple[str, ...] = ()

    def __add__(self, other: Estimate) -> Estimate:
        if other.method is not self.method:
            return NotImplemented
        return Estimate(
            self.method,
            self.flop + other.flop,
            self.low + other.low,
            self.high + other.high,
            tuple(dict.fromkeys((*self.assumptions, *other.assumptions))),
        )

    @classmethod
    def none(cls, method: Method) -> Estimate:
        return cls(method, Flop(0.0), Flop(0.0), Flop(0.0))


@dataclass(frozen=True)
class RunCompute:
    """GPU time on one GPU type, at a measured model FLOP utilisation or (None) the
    default: what a hardware-based estimate multiplies out."""

    gpu_type: str | None
    gpu_seconds: GpuSeconds
    utilisation: float | None = None


def peak_of(gpu_type: str | None) -> tuple[FlopPerSecond, str]:
    """Dense BF16 peak of a GPU type, with its source. A job that may run on any type is
    counted at the fastest type there is: a projection should not understate."""
    known = GPU_TYPES.get(gpu_type or "")
    if known is not None:
        return (
            known.peak_bf16,
            f"{known.name}: {known.peak_bf16_tflops:g} TFLOP/s dense BF16 ({known.source})",
        )
    fastest = max(GPU_TYPES.values(), key=lambda g: g.peak_bf16_tflops)
    return (
        fastest.peak_bf16,
        f"GPU type not fixed: counted at the fastest type, {fastest.name}, {fastest.peak_bf16_tflops:g} TFLOP/s",
    )


def hardware_estimate(runs: Iterable[RunCompute], estimation: Estimation) -> Estimate:
    """C = Σ GPU-seconds × peak FLOP/s of the GPU type × utilisation (Guidelines, Annex A).
    Measured utilisation is banded by its own uncertainty, the default by its low/high."""
    flop = low = high = 0.0
    assumptions: list[str] = []
    defaulted = measured = 0.0
    for run in runs:
        peak, why = peak_of(run.gpu_type)
        at_peak = run.gpu_seconds.value * peak.value
        if at_peak <= 0:
            continue
        assumptions.append(why)
        if run.utilisation is None:
            u = estimation.default_utilisation
            flop += at_peak * u
            low += at_peak * estimation.utilisation_low
            high += at_peak * estimation.utilisation_high
            defaulted += run.gpu_seconds.value
        else:
            u = run.utilisation
            flop += at_peak * u
            low += at_peak * u * (1 - estimation.measured_uncertainty)
            high += at_peak * u * (1 + estimation.measured_uncertainty)
            measured += run.gpu_seconds.value
    if measured:
        assumptions.append(
            f"utilisation as measured by the jobs (MFU) for {measured / 3600:,.1f} GPU-h, "
            f"±{estimation.measured_uncertainty:.0%} ({estimation.measured_source})"
        )
    if defaulted:
        assumptions.append(
            f"utilisation {estimation.default_utilisation:.0%} (band "
            f"{estimation.utilisation_low:.0%}-{estimation.utilisation_high:.0%}) for "
            f"{defaulted / 3600:,.1f} GPU-h whose jobs reported none ({estimation.utilisation_source})"
        )
    return Estimate(
        Method.HARDWARE, Flop(flop), Flop(low), Flop(high), tuple(dict.fromkeys(assumptions))
    )


def architecture_estimate(
    active_parameters: float, tokens: float, estimation: Estimation, tokens_from: str
) -> Estimate:
    """C ≈ 6 × (active) parameters × training tokens (Guidelines, Annex A; dense
    transformers, or the active parameters of a mixture of experts)."""
    flop = estimation.architecture_factor * active_parameters * tokens
    band = estimation.architecture_uncertainty
    return Estimate(
        Method.ARCHITECTURE,
        Flop(flop),
        Flop(flop * (1 - band)),
        Flop(flop * (1 + band)),
        (
            f"{estimation.architecture_factor:g} × {active_parameters:.3g} parameters × "
            f"{tokens:.3g} tokens ({tokens_from})",
            f"±{band:.0%} ({estimation.architecture_source})",
        ),
    )


# --- lineage ------------------------------------------------------------------------------


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


# --- compute levels and the lines they cross ---------------------------------------------


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


@dataclass(frozen=True)
class Line:
    """One line a version's compute is watched against."""

    code: str
    label: str
    flop: Flop
    measure: Measure
    meaning: str
    source: str
    acknowledge: bool = False
    notify_within_days: int | None = None


def lines_for(rules: AiActRules, role: ModelRole, base: BaseCompute | None) -> list[Line]:
    """The rules' thresholds, and for a downstream modifier of a base model the one-third
    line of that base's compute (of 1e23, or of 1e25 for a systemic-risk base, when the
    base's compute is unknown); lowest first."""
    lines = [
        Line(t.code, t.label, t.flop, t.measure, t.meaning, t.source, t.acknowledge,
             t.notify_within_days)
        for t in rules.thresholds
    ]  # fmt: skip
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


# --- what the API exchanges ---------------------------------------------------------------

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

    job_id: int
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
