"""AI models under the EU AI Act: the registry, the compute and energy ledger, projections
of planned compute against the Act's lines, job reports (MFU, tokens) and documentation."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Response, status

from fabriek.api.context import Caller, Ctx, Db
from fabriek.api.routers import API_PREFIX
from fabriek.api.schemas import PageOut, paging
from fabriek.domain.ai_act.documentation import ModelDocumentation, to_card, to_json, to_markdown
from fabriek.domain.ai_act.ledger import Ledger
from fabriek.domain.ai_act.models import (
    BaseModelDraft,
    ComputeProjection,
    JobReport,
    JobReportDraft,
    Model,
    ModelDetail,
    ModelDraft,
    ModelVersion,
    ModelVersionDraft,
    RulesOut,
)
from fabriek.domain.ai_act.vocabulary import JobPurpose
from fabriek.services.ai_act import documentation, job_links, registry, versions
from fabriek.services.ai_act import ledger as ledgers
from fabriek.services.ai_act.projection import planned_projection
from fabriek.services.ai_act.rules import ai_act_rules
from fabriek.services.paging import PageRequest

router = APIRouter(prefix=f"{API_PREFIX}/models", tags=["models"])


class DocFormat(StrEnum):
    MARKDOWN = "md"
    JSON = "json"
    CARD = "card"


@router.get("", response_model=PageOut[Model])
def list_models(
    db: Db,
    who: Caller,
    page: Annotated[PageRequest, Depends(paging)],
    project: Annotated[str | None, Query(description="project name or id")] = None,
) -> PageOut[Model]:
    """The AI models of the projects you can see, newest first."""
    return PageOut.of(registry.list_models(db, who, page, project))


@router.post("", response_model=ModelDetail, status_code=status.HTTP_201_CREATED)
def create_model(body: ModelDraft, db: Db, who: Caller, ctx: Ctx) -> ModelDetail:
    """Register a model for a project you are a member of (and its first version)."""
    return versions.create_model(db, who, body, ctx.clock())


@router.get("/rules", response_model=RulesOut)
def rules(who: Caller) -> RulesOut:
    """The AI Act rules applied: lines, what counts, estimation defaults, dates; each with
    its source."""
    return RulesOut.of(ai_act_rules())


@router.get("/projection", response_model=ComputeProjection)
def projection(
    db: Db,
    who: Caller,
    ctx: Ctx,
    proposal: Annotated[int | None, Query(description="a proposal's requested GPU-hours")] = None,
    allocation: Annotated[
        int | None, Query(description="an allocation's awarded GPU-hours")
    ] = None,
    gpu_hours: Annotated[float | None, Query(ge=0, description="GPU-hours planned")] = None,
    gpu_type: Annotated[str | None, Query(description="of gpu_hours; default any")] = None,
    model: Annotated[str | None, Query(description="NAME:VERSION to add to")] = None,
    mfu: Annotated[float | None, Query(gt=0, le=1, description="default: the rules'")] = None,
    purpose: JobPurpose = JobPurpose.PRE_TRAINING,
) -> ComputeProjection:
    """Planned GPU-hours as FLOP against the AI Act's compute lines (read-only)."""
    return planned_projection(
        db, who, ctx.clock(), ctx.access, proposal_id=proposal, allocation_id=allocation,
        gpu_type=gpu_type, gpu_hours=gpu_hours, model_ref=model, mfu=mfu, purpose=purpose,
    )  # fmt: skip


@router.post("/reports", response_model=JobReport)
def report_job(body: JobReportDraft, db: Db, who: Caller, ctx: Ctx) -> JobReport:
    """A job reports its model FLOP utilisation and/or training tokens (the newest stands)."""
    return job_links.report_job(db, who, body, ctx.clock())


@router.get("/{name}", response_model=ModelDetail)
def get_model(name: str, db: Db, who: Caller) -> ModelDetail:
    return registry.get_model(db, who, name)


@router.post("/{name}/versions", response_model=ModelVersion, status_code=status.HTTP_201_CREATED)
def add_version(name: str, body: ModelVersionDraft, db: Db, who: Caller, ctx: Ctx) -> ModelVersion:
    return versions.add_version(db, who, name, body, ctx.clock())


@router.post("/{name}/versions/{version}/bases", response_model=ModelVersion)
def add_base(
    name: str, version: str, body: BaseModelDraft, db: Db, who: Caller, ctx: Ctx
) -> ModelVersion:
    """Record one more base model; a link that makes the version its own ancestor is 409."""
    return versions.add_base(db, who, f"{name}:{version}", body, ctx.clock())


@router.get("/{name}/versions/{version}/ledger", response_model=Ledger)
def ledger(name: str, version: str, db: Db, who: Caller, ctx: Ctx) -> Ledger:
    """Compute (hardware- and architecture-based) and energy of the version, from its jobs."""
    return ledgers.ledger(db, who, f"{name}:{version}", ctx.clock())


@router.put("/{name}/versions/{version}/documentation", response_model=dict[str, str])
def set_documentation(
    name: str,
    version: str,
    db: Db,
    who: Caller,
    answers: Annotated[dict[str, str | None], Body(description="field key -> text; null removes")],
) -> dict[str, str]:
    """The provider's own answers to the documentation form."""
    return documentation.set_documentation(db, who, f"{name}:{version}", answers)


@router.get(
    "/{name}/versions/{version}/documentation",
    response_model=ModelDocumentation,
    responses={200: {"content": {"text/markdown": {}}}},
)
def get_documentation(
    name: str,
    version: str,
    db: Db,
    who: Caller,
    ctx: Ctx,
    doc_format: Annotated[DocFormat, Query(alias="format")] = DocFormat.JSON,
) -> Response:
    """Annex XI (section 2 too for systemic-risk models) and Annex XII documentation, as
    JSON, Markdown (`format=md`) or a model card with YAML front matter (`format=card`)."""
    doc, book = documentation.model_documentation(db, who, f"{name}:{version}", ctx.clock())
    if doc_format is DocFormat.MARKDOWN:
        return Response(to_markdown(doc), media_type="text/markdown; charset=utf-8")
    if doc_format is DocFormat.CARD:
        return Response(to_card(doc, book), media_type="text/markdown; charset=utf-8")
    return Response(to_json(doc), media_type="application/json")
