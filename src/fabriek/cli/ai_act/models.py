"""`fabriek models`: the AI model registry, each version's compute and energy ledger, the
documentation the EU AI Act asks for, and the reports a job makes of its own utilisation."""

from __future__ import annotations

import json
import math
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape

from fabriek.cli.app import JsonFlag, Limit, app
from fabriek.cli.connection import client
from fabriek.cli.output import console, print_json, print_table
from fabriek.domain.ai_act.models import ModelDraft, ModelVersionDraft
from fabriek.sdk.core import validated

models_app = typer.Typer(
    help="AI models under the EU AI Act: registry, compute ledger, documentation.",
    no_args_is_help=False,
)
app.add_typer(models_app, name="models")

Ref = Annotated[str, typer.Argument(help="NAME:VERSION")]
# A version's size, shared by `models new --version` and `models version`.
Parameters = Annotated[str | None, typer.Option(help="parameter count, e.g. 7e9")]
ActiveParameters = Annotated[
    str | None, typer.Option("--active-parameters", help="per token (mixture of experts)")
]
Tokens = Annotated[str | None, typer.Option(help="training tokens, e.g. 2e12")]
Architecture = Annotated[str | None, typer.Option(help="dense-transformer, ...")]
Bases = Annotated[
    list[str] | None,
    typer.Option("--base", help="a registered base model version, NAME:VERSION (repeatable)"),
]
ExternalBases = Annotated[
    list[str] | None,
    typer.Option(
        "--external-base",
        help="an external base model: NAME=FLOP, NAME=unknown, add ',systemic' for a "
        "systemic-risk model (repeatable)",
    ),
]


def _count(text: str | None, option: str) -> int | None:
    """A count given as 7000000000, 7e9 or 7_000_000_000."""
    if text is None:
        return None
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise typer.BadParameter(f"{option} {text!r}: give a number such as 7e9") from None
    if not math.isfinite(value) or value != int(value):
        raise typer.BadParameter(f"{option} {text!r}: give a whole number such as 7e9")
    return int(value)


def _external(text: str) -> dict[str, Any]:
    name, sep, rest = text.partition("=")
    flop_text, _, flag = rest.partition(",")
    if not sep or not name or flag not in ("", "systemic"):
        raise typer.BadParameter(
            f"--external-base {text!r}: use NAME=FLOP or NAME=unknown, then ',systemic' if it is"
        )
    body: dict[str, Any] = {"external": name, "systemic_risk": flag == "systemic"}
    if flop_text != "unknown":
        try:
            body["training_flop"] = float(flop_text)
        except ValueError:
            raise typer.BadParameter(f"--external-base {text!r}: FLOP like 1.2e24") from None
    return body


def _bases(bases: list[str] | None, externals: list[str] | None) -> list[dict[str, Any]]:
    return [{"model": b} for b in bases or []] + [_external(e) for e in externals or []]


def _version_body(
    version: str,
    parameters: str | None,
    active: str | None,
    tokens: str | None,
    architecture: str | None,
    bases: list[dict[str, Any]],
) -> dict[str, Any]:
    body: dict[str, Any] = {"version": version, "bases": bases}
    for key, value in (
        ("parameters", _count(parameters, "--parameters")),
        ("active_parameters", _count(active, "--active-parameters")),
        ("training_tokens", _count(tokens, "--tokens")),
        ("architecture", architecture),
    ):
        if value is not None:
            body[key] = value
    return body


def _flop(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.2e}"


@models_app.callback(invoke_without_command=True)
def models(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Option("--project", "-A", help="only this one")] = None,
    as_json: JsonFlag = False,
    limit: Limit = 100,
) -> None:
    """List the AI models of your projects."""
    if ctx.invoked_subcommand is not None:
        return
    with client() as c:
        found = c.ai_act.models(limit=limit, project=project)
    if as_json:
        print_json(found.items)
        return
    rows = [
        (m.name, m.project, m.provider, m.role.value, ", ".join(m.versions) or "-",
         m.licence or "-", m.openness.value)
        for m in found.items
    ]  # fmt: skip
    print_table(None, ["Model", "Project", "Provider", "Role", "Versions", "Licence", "Openness"],
                rows, f"{found.total} model(s)")  # fmt: skip


@models_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="the model's name")], as_json: JsonFlag = False
) -> None:
    """One model with its versions, their sizes and base models."""
    with client() as c:
        found = c.ai_act.model(name)
    if as_json:
        print_json(found)
        return
    console.print(f"[bold]{escape(found.name)}[/] {escape(found.title)}".rstrip())
    console.print(
        f"provider: {found.provider} ({found.role.value}); project {found.project}", markup=False
    )
    console.print(f"licence: {found.licence or '-'} ({found.openness.value})", markup=False)
    if found.intended_purpose:
        console.print(f"intended purpose: {found.intended_purpose}", soft_wrap=True, markup=False)
    ins = ", ".join(m.value for m in found.input_modalities)
    outs = ", ".join(m.value for m in found.output_modalities)
    console.print(f"modalities: {ins} -> {outs}", markup=False)
    rows = [
        (v.version, f"{v.parameters:,}" if v.parameters else "-",
         f"{v.training_tokens:,}" if v.training_tokens else "-", v.architecture.value,
         ", ".join(b.model or f"{b.external} ({_flop(b.training_flop)} FLOP)" for b in v.bases)
         or "-", v.jobs)
        for v in found.version_details
    ]  # fmt: skip
    print_table("Versions", ["Version", "Parameters", "Tokens", "Architecture", "Base models",
                             "#Jobs"], rows)  # fmt: skip


@models_app.command("new")
def new(
    name: Annotated[str, typer.Argument(help="unique name, e.g. gpt-nl")],
    project: Annotated[str, typer.Option("--project", "-A", help="the project it belongs to")],
    provider: Annotated[str, typer.Option(help="the legal entity that provides it")],
    role: Annotated[str, typer.Option(help="provider, downstream-modifier or deployer")] = (
        "provider"
    ),
    title: Annotated[str, typer.Option(help="a human title")] = "",
    purpose: Annotated[str, typer.Option("--intended-purpose", help="what it is for")] = "",
    licence: Annotated[str | None, typer.Option(help="e.g. apache-2.0")] = None,
    openness: Annotated[str, typer.Option(help="closed, open-weights or open-source")] = "closed",
    monetised: Annotated[bool, typer.Option("--monetised", help="sold or paid for")] = False,
    inputs: Annotated[list[str] | None, typer.Option("--input", help="input modality")] = None,
    outputs: Annotated[list[str] | None, typer.Option("--output", help="output modality")] = None,
    version: Annotated[str | None, typer.Option(help="register its first version too")] = None,
    parameters: Parameters = None,
    active_parameters: ActiveParameters = None,
    tokens: Tokens = None,
    architecture: Architecture = None,
    base: Bases = None,
    external_base: ExternalBases = None,
    as_json: JsonFlag = False,
) -> None:
    """Register a model: `fabriek models new gpt-nl -A dutch-llm --provider "TU Delft"
    --version 1.0 --parameters 7e9`."""
    body: dict[str, Any] = {
        "name": name, "project": project, "provider": provider, "role": role, "title": title,
        "intended_purpose": purpose, "openness": openness, "monetised": monetised,
    }  # fmt: skip
    if licence:
        body["licence"] = licence
    if inputs:
        body["input_modalities"] = inputs
    if outputs:
        body["output_modalities"] = outputs
    if version is not None:
        body["first_version"] = _version_body(
            version, parameters, active_parameters, tokens, architecture,
            _bases(base, external_base),
        )  # fmt: skip
    elif parameters or tokens or base or external_base:
        raise typer.BadParameter("--parameters, --tokens and --base need --version")
    with client() as c:
        made = c.ai_act.create_model(validated(ModelDraft, body))
    if as_json:
        print_json(made)
    else:
        print(f"Registered model {made.name}" + (f" version {version}" if version else ""))


@models_app.command("version")
def version(
    name: Annotated[str, typer.Argument(help="the model's name")],
    version: Annotated[str, typer.Argument(help="the new version, e.g. 1.1")],
    parameters: Parameters = None,
    active_parameters: ActiveParameters = None,
    tokens: Tokens = None,
    architecture: Architecture = None,
    base: Bases = None,
    external_base: ExternalBases = None,
    as_json: JsonFlag = False,
) -> None:
    """Register a new version of a model, with its base models."""
    body = _version_body(
        version, parameters, active_parameters, tokens, architecture, _bases(base, external_base)
    )
    with client() as c:
        made = c.ai_act.add_model_version(name, validated(ModelVersionDraft, body))
    if as_json:
        print_json(made)
    else:
        print(f"Registered {made.ref}")


@models_app.command("ledger")
def ledger(ref: Ref, as_json: JsonFlag = False) -> None:
    """A version's compute and energy ledger: each linked job, the estimates with their
    method and band, the lineage, and where each EU AI Act line stands."""
    with client() as c:
        book = c.ai_act.model_ledger(ref)
    if as_json:
        print_json(book)
        return
    console.print(f"[bold]{escape(book.model)}[/] ({book.role.value}, project {escape(book.project)}); "
                  f"rules {book.rules_version}")  # fmt: skip
    console.print(f"training compute:   {book.training.text}", soft_wrap=True, markup=False)
    console.print(f"modification:       {book.modification.text}", soft_wrap=True, markup=False)
    complete = "" if book.cumulative_complete else " (a base model's compute is unknown)"
    console.print(
        f"cumulative:         {book.cumulative.text}{complete}", soft_wrap=True, markup=False
    )
    if book.architecture is not None:
        console.print(f"architecture-based: {book.architecture.text}", soft_wrap=True, markup=False)
    t = book.training_time
    console.print(
        f"training time:      {t.wall_clock_days:.3g} wall-clock days, {t.gpu_days:.3g} GPU-days",
        markup=False,
    )
    console.print(f"energy:             {book.energy.text}", soft_wrap=True, markup=False)
    if book.inference is not None:
        console.print(
            f"inference energy:   {book.inference.text} (not training)",
            soft_wrap=True,
            markup=False,
        )
    rows = [
        (j.job_id, j.name[:24], j.state, j.purpose.value,
         "yes" if j.counts_as_cumulative else "no", j.gpu_type or "-", f"{j.gpu_hours:,.2f}",
         f"{j.mfu:.2f}" if j.mfu is not None else "default", f"{j.flop:.2e}",
         f"{j.it_kwh:,.2f}")
        for j in book.jobs
    ]  # fmt: skip
    print_table("Jobs", ["#Job", "Name", "State", "Purpose", "Counts", "GPU", "GPU-h", "MFU",
                         "FLOP", "IT kWh"], rows)  # fmt: skip
    lines = [
        (line.label, f"{line.line_flop:.2e}", line.measure.value, f"{line.value_flop:.2e}",
         f"{100 * line.fraction:.1f} %", "EXCEEDED" if line.exceeded else "below")
        for line in book.lines
    ]  # fmt: skip
    print_table("EU AI Act lines", ["Line", "FLOP", "Measure", "Now", "Of line", "Status"],
                lines)  # fmt: skip


@models_app.command("docs")
def docs(
    ref: Ref,
    fmt: Annotated[str, typer.Option("--format", help="md, json or card")] = "md",
) -> None:
    """The version's EU AI Act documentation (Annex XI, XII), filled from the ledger:
    Markdown, JSON, or a model card with YAML front matter."""
    if fmt not in ("md", "json", "card"):
        raise typer.BadParameter(f"--format {fmt!r}: md, json or card")
    with client() as c:
        text = c.ai_act.model_documentation(ref, fmt)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


@models_app.command("document")
def document(
    ref: Ref,
    answers: Annotated[
        list[str], typer.Argument(help="FIELD=TEXT, or FIELD=@FILE to read the text from a file")
    ],
) -> None:
    """Write your own answers to the documentation form (FIELD= with nothing removes one)."""
    body: dict[str, str | None] = {}
    for pair in answers:
        key, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"{pair!r}: use FIELD=TEXT")
        if value.startswith("@"):
            try:
                with open(value[1:], encoding="utf-8") as handle:
                    value = handle.read()
            except OSError as exc:
                raise typer.BadParameter(f"cannot read {value[1:]}: {exc.strerror}") from None
        body[key] = value or None
    with client() as c:
        now = c.ai_act.set_model_documentation(ref, body)
    print(f"{ref}: {len(now)} field(s) written: {', '.join(sorted(now)) or '-'}")


@models_app.command("report")
def report(
    job_id: Annotated[int, typer.Argument(help="the job, e.g. $FABRIEK_JOB_ID inside it")],
    mfu: Annotated[float | None, typer.Option(help="model FLOP utilisation, 0-1")] = None,
    tokens: Annotated[str | None, typer.Option(help="training tokens processed")] = None,
) -> None:
    """Report a job's model FLOP utilisation and/or training tokens (the newest stands)."""
    if mfu is None and tokens is None:
        raise typer.BadParameter("give --mfu, --tokens or both")
    with client() as c:
        made = c.ai_act.report_job(job_id, mfu, _count(tokens, "--tokens"))
    print(f"Job {made.job_id} ({made.model}, {made.purpose.value}): reported")


@models_app.command("projection")
def projection(
    gpu_hours: Annotated[float | None, typer.Option("--gpu-hours", help="planned")] = None,
    gpu_type: Annotated[str | None, typer.Option("--gpu-type", help="default: any")] = None,
    proposal: Annotated[int | None, typer.Option(help="a proposal's request")] = None,
    allocation: Annotated[int | None, typer.Option(help="an allocation's award")] = None,
    model: Annotated[str | None, typer.Option(help="NAME:VERSION to add to")] = None,
    mfu: Annotated[float | None, typer.Option(help="default: the rules'")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Planned GPU-hours as FLOP against the EU AI Act's compute lines."""
    with client() as c:
        found = c.ai_act.compute_projection(
            gpu_hours=gpu_hours, gpu_type=gpu_type, proposal=proposal, allocation=allocation,
            model=model, mfu=mfu,
        )  # fmt: skip
    if as_json:
        print(json.dumps(found.model_dump(mode="json"), indent=2))
        return
    hours = ", ".join(f"{h:,.0f} {t}" for t, h in found.gpu_hours.items())
    console.print(
        f"{found.source}: {hours} GPU-h = {found.planned.text}", soft_wrap=True, markup=False
    )
    rows = [
        (line.label, f"{line.line_flop:.2e}", f"{line.after_flop:.2e}",
         f"{100 * line.fraction:.1f} %", "crossed" if line.crossed else
         ("exceeded" if line.exceeded else "below"))
        for line in found.lines
    ]  # fmt: skip
    print_table("EU AI Act lines", ["Line", "FLOP", "After", "Of line", "Status"], rows)
