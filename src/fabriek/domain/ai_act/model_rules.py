"""The AI Act's rules for models, as data: which job purposes count, the compute
thresholds, the one-third rule for downstream modifiers, estimation defaults, limits,
documentation fields and key dates. `fabriek/config/ai_act.toml` holds their content;
`parse_ai_act_rules` turns the parsed file into `AiActRules` or refuses it with one line
naming the entry at fault. Reading the file is the service's job."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any, TypeVar

from fabriek.domain.ai_act.vocabulary import (
    LEDGER_FILLS,
    PROVIDER_FILL,
    Audience,
    DocSection,
    JobPurpose,
    Measure,
)
from fabriek.domain.config_files import FileTable, read_table
from fabriek.domain.units import Flop


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
    """The largest model size a registered version may state (a bound against typing
    mistakes, not a legal threshold), and where the bound comes from."""

    max_parameters: float
    max_training_tokens: float
    source: str


@dataclass(frozen=True)
class DocField:
    """One field of a model's technical documentation: its section, who it is for (the
    Model Documentation Form's audiences), who fills it (the provider, or Fabriek from
    what it knows) and the text that asks for it."""

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


def _estimation(data: Mapping[str, Any]) -> Estimation:
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
    return estimation


def _limits(data: Mapping[str, Any]) -> Limits:
    lim = dict(_need(data, "limits", "the file"))
    return Limits(
        max_parameters=_number(lim, "max_parameters", "limits", 1.0, 1e20),
        max_training_tokens=_number(lim, "max_training_tokens", "limits", 1.0, 1e20),
        source=_text(lim, "source", "limits"),
    )


def _modifier(data: Mapping[str, Any]) -> ModifierRule:
    mod = dict(_need(data, "modifier", "the file"))
    return ModifierRule(
        fraction=_number(mod, "fraction", "modifier", 1e-6, 1.0),
        unknown_base_flop=Flop(_number(mod, "unknown_base_flop", "modifier", 1.0, 1e40)),
        unknown_systemic_base_flop=Flop(
            _number(mod, "unknown_systemic_base_flop", "modifier", 1.0, 1e40)
        ),
        source=_text(mod, "source", "modifier"),
    )


def _purposes(data: Mapping[str, Any]) -> dict[JobPurpose, PurposeRule]:
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
    return purposes


def _documentation(data: Mapping[str, Any]) -> tuple[DocField, ...]:
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
    return tuple(docs)


def _dates(data: Mapping[str, Any]) -> tuple[KeyDate, ...]:
    dates = []
    for i, entry in enumerate(data.get("dates", [])):
        where = f"dates[{i}]"
        on = _need(entry, "date", where)
        if not isinstance(on, date) or isinstance(on, datetime):
            raise ValueError(f"{where}.date: must be a TOML date like 2026-08-02")
        dates.append(KeyDate(on, _text(entry, "what", where), _text(entry, "source", where)))
    return tuple(sorted(dates, key=lambda d: d.on))


# The file's shape: every key it may hold, each of its TOML type, checked before the rules
# are read (a misspelt key, or `training = "no"`, is refused, not read as absent or true).
# Keys are optional here so that a missing one is named by the rules below, in the words
# they use for it; a date stays untyped for the same reason.


class _EstimationTable(FileTable):
    default_utilisation: float | None = None
    utilisation_low: float | None = None
    utilisation_high: float | None = None
    utilisation_source: str | None = None
    measured_uncertainty: float | None = None
    measured_source: str | None = None
    architecture_factor: float | None = None
    architecture_uncertainty: float | None = None
    architecture_source: str | None = None
    allowed_error: float | None = None
    allowed_error_source: str | None = None
    significant_figures: int | None = None
    significant_figures_source: str | None = None


class _LimitsTable(FileTable):
    max_parameters: float | None = None
    max_training_tokens: float | None = None
    source: str | None = None


class _ModifierTable(FileTable):
    fraction: float | None = None
    unknown_base_flop: float | None = None
    unknown_systemic_base_flop: float | None = None
    source: str | None = None


class _ThresholdTable(FileTable):
    code: str | None = None
    label: str | None = None
    flop: float | None = None
    fraction: float | None = None
    of: str | None = None
    measure: str | None = None
    meaning: str | None = None
    source: str | None = None
    acknowledge: bool | None = None
    notify_within_days: int | None = None


class _PurposeTable(FileTable):
    code: str | None = None
    training: bool | None = None
    cumulative: bool | None = None
    source: str | None = None


class _DocumentationTable(FileTable):
    key: str | None = None
    section: str | None = None
    label: str | None = None
    fill: str | None = None
    audiences: list[str] | None = None
    source: str | None = None


class _DateTable(FileTable):
    date: Any = None
    what: str | None = None
    source: str | None = None


class _AiActFile(FileTable):
    version: str | None = None
    regulation: str | None = None
    estimation: _EstimationTable | None = None
    limits: _LimitsTable | None = None
    modifier: _ModifierTable | None = None
    thresholds: list[_ThresholdTable] | None = None
    purposes: list[_PurposeTable] | None = None
    documentation: list[_DocumentationTable] | None = None
    dates: list[_DateTable] | None = None


def parse_ai_act_rules(data: Mapping[str, Any]) -> AiActRules:
    """`AiActRules` from the parsed TOML; a ValueError names the first bad entry."""
    read_table(_AiActFile, data)
    # Checked in the file's order, so the first bad entry is the one named.
    estimation = _estimation(data)
    limits = _limits(data)
    modifier = _modifier(data)
    purposes = _purposes(data)
    documentation = _documentation(data)
    dates = _dates(data)
    return AiActRules(
        version=_text(data, "version", "the file"),
        regulation=_text(data, "regulation", "the file"),
        estimation=estimation,
        limits=limits,
        modifier=modifier,
        thresholds=_thresholds(_need(data, "thresholds", "the file")),
        purposes=purposes,
        documentation=documentation,
        dates=dates,
    )
