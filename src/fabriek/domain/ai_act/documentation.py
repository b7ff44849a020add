"""The documentation of a model version under the EU AI Act: Annex XI section 1 (and
section 2 for a systemic-risk model) for the AI Office and national authorities, Annex XII
for downstream providers, each field marked with its audience, pre-filled from the
registry and the ledger where Fabriek knows the answer and left as a form where only the
provider does. Rendered as Markdown, JSON, or a Hugging Face model card's YAML front matter.

Pure: the service hands in the model, the version, its ledger and the provider's answers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from fabriek.domain.ai_act.figures import significant
from fabriek.domain.ai_act.ledger import Ledger
from fabriek.domain.ai_act.model_rules import AiActRules, DocField
from fabriek.domain.ai_act.models import Model, ModelVersion, open_source_exemption
from fabriek.domain.ai_act.vocabulary import PROVIDER_FILL, Audience, DocSection


class FilledBy(StrEnum):
    FABRIEK = "fabriek"  # from the ledger: measured and estimated by the factory
    REGISTRY = "registry"  # from what the provider registered with the model
    PROVIDER = "provider"  # written by the provider through the documentation form


AUDIENCE_NAMES = {
    Audience.AI_OFFICE: "AI Office",
    Audience.NATIONAL_AUTHORITY: "national competent authorities",
    Audience.DOWNSTREAM_PROVIDER: "downstream providers",
}
SECTION_TITLES = {
    DocSection.ANNEX_XI_1: "Annex XI, section 1: technical documentation (all GPAI models)",
    DocSection.ANNEX_XI_2: "Annex XI, section 2: additional documentation (systemic-risk models)",
    DocSection.ANNEX_XII: "Annex XII: information for downstream providers",
}
_REGISTRY_FILLS = frozenset(
    {"intended_purpose", "release", "architecture", "modalities", "licence"}
)


class DocEntry(BaseModel):
    key: str
    section: DocSection
    label: str
    audiences: list[Audience]
    source: str
    filled_by: FilledBy
    value: str | None = Field(description="None: owed by the provider")
    owed: bool
    note: str | None = Field(default=None, description="why it is owed, or the provider's note")


class ModelDocumentation(BaseModel):
    model: str
    title: str
    provider: str
    role: str
    project: str
    generated_at: datetime
    regulation: str
    rules_version: str
    systemic_risk: bool
    open_source_exemption: bool
    sections: list[DocSection]
    entries: list[DocEntry]
    owed: list[str] = Field(description="keys of the fields the provider has still to write")
    base_models: list[str]
    licence: str | None


def provider_keys(rules: AiActRules) -> list[str]:
    """Every field the provider may write: the form's fields, and a note on any other."""
    return [d.key for d in rules.documentation]


def _fabriek_value(
    fill: str, model: Model, version: ModelVersion, ledger: Ledger, figures: int
) -> tuple[str | None, str | None]:
    """The value Fabriek fills a field with, or (None, why it is owed)."""
    if fill == "intended_purpose":
        return (model.intended_purpose or None), "describe the intended tasks when registering"
    if fill == "release":
        parts = []
        if version.release_date:
            parts.append(f"released {version.release_date:%Y-%m-%d}")
        if version.distribution:
            parts.append(f"distributed by: {version.distribution}")
        return ("; ".join(parts) or None), "give the version's release_date and distribution"
    if fill == "architecture":
        if version.parameters is None:
            return None, "give the version's parameter count"
        active = (
            f" ({version.active_parameters:,} active per token)"
            if version.active_parameters and version.active_parameters != version.parameters
            else ""
        )
        return f"{version.architecture.value}, {version.parameters:,} parameters{active}", None
    if fill == "modalities":
        ins = ", ".join(m.value for m in model.input_modalities)
        outs = ", ".join(m.value for m in model.output_modalities)
        return f"input: {ins}; output: {outs}", None
    if fill == "licence":
        if model.licence is None:
            return None, "give the model's licence"
        terms = f"{model.openness.value}, {'monetised' if model.monetised else 'not monetised'}"
        return f"{model.licence} ({terms})", None
    if fill == "data_residency":
        sites = f"; processed at {', '.join(ledger.sites)}" if ledger.sites else ""
        if ledger.datasets is None:
            return None, (
                "owed: no training job of this version named its datasets (name registered "
                f"datasets when submitting the jobs){sites}"
            )
        return ("; ".join(ledger.datasets) or "no datasets") + sites, None
    if fill == "training_compute":
        if not ledger.jobs:
            return None, "no job is linked to this version yet"
        text = f"{ledger.modification.text} for this version's own training"
        if ledger.lineage:
            complete = "" if ledger.cumulative_complete else " (a base model's compute is unknown)"
            text += f"; cumulative with its base models {ledger.cumulative.text}{complete}"
        if ledger.architecture is not None:
            text += f"; cross-check {ledger.architecture.text}"
        return text + ". Assumptions: " + "; ".join(ledger.modification.assumptions), None
    if fill == "training_time":
        t = ledger.training_time
        if t.first_start is None:
            return None, "no counted run has happened yet"
        return (
            f"{significant(t.wall_clock_days, figures)} wall-clock days, "
            f"{significant(t.gpu_days, figures)} GPU-days "
            f"({t.first_start:%Y-%m-%d} to {t.last_end:%Y-%m-%d})"
        ), None
    if fill == "hardware":
        if not ledger.hardware:
            return None, "no counted run has happened yet"
        return "; ".join(
            f"{h.name}: {h.gpu_hours:,.0f} GPU-hours, up to {h.largest_run_gpus} GPUs in one run"
            for h in ledger.hardware
        ), None
    if fill == "energy":
        if not ledger.hardware:
            return None, "no counted run has happened yet"
        return f"{ledger.energy.text}. Boundary: {ledger.energy.boundary}", None
    raise ValueError(f"no figure {fill!r}")


def _entry(
    field: DocField,
    model: Model,
    version: ModelVersion,
    ledger: Ledger,
    answers: Mapping[str, str],
    figures: int,
) -> DocEntry:
    answer = answers.get(field.key)
    if field.fill == PROVIDER_FILL:
        return DocEntry(
            key=field.key, section=field.section, label=field.label,
            audiences=list(field.audiences), source=field.source, filled_by=FilledBy.PROVIDER,
            value=answer, owed=answer is None,
            note=None if answer else "owed by the provider: write it with the documentation form",
        )  # fmt: skip
    value, why = _fabriek_value(field.fill, model, version, ledger, figures)
    by = FilledBy.REGISTRY if field.fill in _REGISTRY_FILLS else FilledBy.FABRIEK
    if value is None and answer is not None:
        # Nothing Fabriek knows: the provider's own answer fills the field.
        return DocEntry(
            key=field.key, section=field.section, label=field.label,
            audiences=list(field.audiences), source=field.source, filled_by=FilledBy.PROVIDER,
            value=answer, owed=False,
        )  # fmt: skip
    return DocEntry(
        key=field.key, section=field.section, label=field.label,
        audiences=list(field.audiences), source=field.source, filled_by=by, value=value,
        owed=value is None,
        note=(f"provider's note: {answer}" if answer else None) if value is not None else why,
    )  # fmt: skip


def documentation(
    rules: AiActRules,
    model: Model,
    version: ModelVersion,
    ledger: Ledger,
    answers: Mapping[str, str],
    generated_at: datetime,
) -> ModelDocumentation:
    """The version's documentation: Annex XI section 1 and Annex XII always, section 2
    when its cumulative compute is past the systemic-risk line."""
    sections = [DocSection.ANNEX_XI_1]
    if ledger.systemic_risk:
        sections.append(DocSection.ANNEX_XI_2)
    sections.append(DocSection.ANNEX_XII)
    figures = rules.estimation.significant_figures
    entries = [
        _entry(f, model, version, ledger, answers, figures)
        for section in sections
        for f in rules.documentation
        if f.section is section
    ]
    return ModelDocumentation(
        model=version.ref,
        title=model.title or model.name,
        provider=model.provider,
        role=model.role.value,
        project=model.project,
        generated_at=generated_at,
        regulation=rules.regulation,
        rules_version=rules.version,
        systemic_risk=ledger.systemic_risk,
        open_source_exemption=open_source_exemption(
            model.openness, model.monetised, ledger.systemic_risk
        ),
        sections=sections,
        entries=entries,
        owed=[e.key for e in entries if e.owed],
        base_models=[b.model or b.external or "" for b in version.bases],
        licence=model.licence,
    )


# --- renderings ---------------------------------------------------------------------------


def to_markdown(doc: ModelDocumentation) -> str:
    """The documentation as a Markdown document a person reads and a provider completes."""
    out = [
        f"# {doc.title} ({doc.model}): documentation under the EU AI Act",
        "",
        f"- Provider: {doc.provider} ({doc.role}); project {doc.project}",
        f"- Generated by Fabriek on {doc.generated_at:%Y-%m-%d %H:%M} UTC from its ledger, "
        f"under {doc.regulation} (rules {doc.rules_version})",
        f"- Systemic risk presumed: {'yes' if doc.systemic_risk else 'no'}",
    ]
    if doc.base_models:
        out.append(f"- Base models: {', '.join(doc.base_models)}")
    if doc.open_source_exemption:
        out.append(
            "- Art. 53(2): as an open-source model that is not monetised, it may be exempt "
            "from the Annex XI and XII documentation duties (not from the copyright policy "
            "or the training-content summary)"
        )
    if doc.owed:
        out.append(f"- Still owed by the provider: {len(doc.owed)} field(s), marked below")
    for section in doc.sections:
        out += ["", f"## {SECTION_TITLES[section]}"]
        for e in (e for e in doc.entries if e.section is section):
            audience = ", ".join(AUDIENCE_NAMES[a] for a in e.audiences)
            out += [
                "",
                f"### {e.label}",
                "",
                f"*For: {audience}. Source: {e.source}. Filled by: {e.filled_by.value}.*",
                "",
            ]
            if e.value is not None:
                out.append(e.value)
            else:
                out.append(f"**Owed by the provider** (`{e.key}`): {e.note}")
            if e.value is not None and e.note:
                out += ["", f"> {e.note}"]
    return "\n".join(out) + "\n"


def to_json(doc: ModelDocumentation) -> str:
    return doc.model_dump_json(indent=2)


_YAML_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"})


def _printable(code: int) -> bool:
    """Whether YAML lets the character stand as itself in a double-quoted scalar."""
    return (
        code in (0x09, 0x0A, 0x0D) or 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF
    ) and code not in (0x0A, 0x0D, 0x09, 0x2028, 0x2029, 0xFEFF)  # fmt: skip


def _quote(text: str) -> str:
    out = []
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif _printable(code):
            out.append(ch)
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def _yaml_key(key: str) -> str:
    plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) and key.lower() not in _YAML_WORDS
    return key if plain else _quote(key)


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # YAML 1.1 readers want a dot in the mantissa and a sign in the exponent.
        text = repr(value)
        if "e" in text:
            mantissa, exponent = text.split("e")
            mantissa = mantissa if "." in mantissa else f"{mantissa}.0"
            exponent = exponent if exponent[0] in "+-" else f"+{exponent}"
            text = f"{mantissa}e{exponent}"
        return text
    return _quote(str(value))


def to_yaml(value: Mapping[str, Any], indent: int = 0) -> str:
    """Block-style YAML of nested mappings, lists of scalars and scalars (no anchors, no
    tags), which the Hub's YAML reader reads back as the same values."""
    pad = " " * indent
    lines: list[str] = []
    for name, item in value.items():
        key = _yaml_key(str(name))
        if isinstance(item, Mapping):
            if not item:
                lines.append(f"{pad}{key}: {{}}")
                continue
            lines.append(f"{pad}{key}:")
            lines.append(to_yaml(item, indent + 2).rstrip("\n"))
        elif isinstance(item, list):
            if not item:
                lines.append(f"{pad}{key}: []")
                continue
            lines.append(f"{pad}{key}:")
            lines.extend(f"{pad}- {_yaml_scalar(v)}" for v in item)
        else:
            lines.append(f"{pad}{key}: {_yaml_scalar(item)}")
    return "\n".join(lines) + "\n"


# Licence identifiers the Hugging Face Hub knows by these names; any other is "other",
# with the name kept in `license_name`.
HUB_LICENCES = frozenset(
    {
        "apache-2.0", "mit", "bsd-3-clause", "bsd-2-clause", "gpl-3.0", "lgpl-3.0",
        "agpl-3.0", "mpl-2.0", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "cc0-1.0",
        "openrail", "bigscience-openrail-m", "creativeml-openrail-m", "eupl-1.2",
        "llama2", "llama3", "llama3.1", "llama3.2", "llama3.3", "gemma", "unlicense",
    }
)  # fmt: skip


def _licence_fields(licence: str | None) -> dict[str, str]:
    if licence is None:
        return {}
    code = licence.strip().lower()
    if code in HUB_LICENCES:
        return {"license": code}
    slug = re.sub(r"[^a-z0-9.-]+", "-", code).strip("-") or "custom"
    return {"license": "other", "license_name": slug}


def card_metadata(doc: ModelDocumentation, ledger: Ledger) -> dict[str, Any]:
    """The model card's front matter: the Hub's own keys (license, base_model, tags), and
    the AI Act figures under `eu_ai_act`."""
    meta: dict[str, Any] = {**_licence_fields(doc.licence)}
    # The Hub takes `base_model` only as its own repository ids (owner/name); the others
    # (versions registered here, external names) are kept under `eu_ai_act`.
    hub_ids = [b for b in doc.base_models if re.fullmatch(r"[\w.-]+/[\w.-]+", b)]
    if hub_ids:
        meta["base_model"] = hub_ids
    meta["tags"] = ["eu-ai-act", "fabriek"]
    figures = {
        "provider": doc.provider,
        "model": doc.model,
        "regulation": doc.regulation,
        "rules_version": doc.rules_version,
        "systemic_risk": doc.systemic_risk,
        "training_compute_flop": float(significant(ledger.modification.flop)),
        "training_compute_method": ledger.modification.method.value,
        "cumulative_compute_flop": float(significant(ledger.cumulative.flop)),
        "cumulative_compute_complete": ledger.cumulative_complete,
        "training_time_wall_clock_days": float(significant(ledger.training_time.wall_clock_days)),
        "training_time_gpu_days": float(significant(ledger.training_time.gpu_days)),
        "training_energy_mwh": float(significant(ledger.energy.it_mwh)),
        "training_energy_facility_mwh": float(significant(ledger.energy.facility_mwh)),
        "energy_method": ledger.energy.method,
        "hardware": [f"{h.name}: {h.gpu_hours:,.0f} GPU-h" for h in ledger.hardware],
        "base_models": [b for b in doc.base_models if b],
        "documentation_owed": doc.owed,
    }
    if ledger.architecture is not None:
        figures["architecture_compute_flop"] = float(significant(ledger.architecture.flop))
    meta["eu_ai_act"] = figures
    return meta


def to_card(doc: ModelDocumentation, ledger: Ledger) -> str:
    """A model card: YAML front matter the Hugging Face Hub reads, then the downstream
    information (Annex XII) as its text."""
    body = [
        f"# {doc.title}",
        "",
        f"{doc.model} by {doc.provider}. Training compute and energy measured by Fabriek: "
        f"{ledger.modification.text}; energy {ledger.energy.text}.",
    ]
    for e in doc.entries:
        if e.section is DocSection.ANNEX_XII or Audience.DOWNSTREAM_PROVIDER in e.audiences:
            body += ["", f"## {e.label}", "", e.value or "(to be written by the provider)"]
    return "---\n" + to_yaml(card_metadata(doc, ledger)) + "---\n\n" + "\n".join(body) + "\n"
