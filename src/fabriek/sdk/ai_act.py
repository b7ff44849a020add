"""The EU AI Act: general-purpose AI models (versions, lineage, compute ledger,
documentation), AI systems and their risk classification, and regulatory sandboxes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fabriek.domain.ai_act.ledger import Ledger
from fabriek.domain.ai_act.models import (
    BaseModelDraft,
    ComputeProjection,
    JobReport,
    Model,
    ModelDetail,
    ModelDraft,
    ModelVersion,
    ModelVersionDraft,
    RulesOut,
)
from fabriek.domain.ai_act.sandboxes import Sandbox, SandboxDraft
from fabriek.domain.ai_act.systems import (
    AiSystem,
    AiSystemDraft,
    Classification,
    ClassificationSummary,
    ResultOut,
)
from fabriek.sdk.core import Listing, SubClient


def _version_path(ref: str) -> str:
    """NAME:VERSION as its path under /models (the server checks both segments)."""
    name, _, version = ref.partition(":")
    return f"/models/{name}/versions/{version}"


class AiActClient(SubClient):
    """`client.ai_act`: what the AI Act asks of models, systems and sandboxes."""

    # --- general-purpose AI models ------------------------------------------------------

    def models(
        self, limit: int = 100, offset: int = 0, project: str | None = None
    ) -> Listing[Model]:
        """The AI models of the projects you can see, newest first."""
        params = {"limit": limit, "offset": offset, "project": project}
        return self._core.listing(Model, "/models", params)

    def model(self, name: str) -> ModelDetail:
        """One model with its versions."""
        return ModelDetail.model_validate(self._core.get(f"/models/{name}"))

    def create_model(self, draft: ModelDraft) -> ModelDetail:
        """Register a model (and, optionally, its first version)."""
        return ModelDetail.model_validate(self._core.post("/models", draft))

    def add_model_version(self, name: str, draft: ModelVersionDraft) -> ModelVersion:
        """Register a version of a model."""
        return ModelVersion.model_validate(self._core.post(f"/models/{name}/versions", draft))

    def add_model_base(self, ref: str, draft: BaseModelDraft) -> ModelVersion:
        """Record one more base model of NAME:VERSION."""
        answer = self._core.post(f"{_version_path(ref)}/bases", draft)
        return ModelVersion.model_validate(answer)

    def model_ledger(self, ref: str) -> Ledger:
        """The compute and energy ledger of NAME:VERSION."""
        return Ledger.model_validate(self._core.get(f"{_version_path(ref)}/ledger"))

    def model_documentation(self, ref: str, fmt: str = "json") -> str:
        """The documentation of NAME:VERSION as `json`, `md` or `card` text."""
        path = f"{_version_path(ref)}/documentation"
        return self._core.request("GET", path, params={"format": fmt}).text

    def set_model_documentation(
        self, ref: str, answers: Mapping[str, str | None]
    ) -> dict[str, str]:
        """The provider's answers to the documentation form (None removes one)."""
        path = f"{_version_path(ref)}/documentation"
        result: dict[str, str] = self._core.request("PUT", path, json=dict(answers)).json()
        return result

    def report_job(
        self, job_id: int, mfu: float | None = None, tokens: int | None = None
    ) -> JobReport:
        """Report a job's model FLOP utilisation and/or training tokens processed."""
        body: dict[str, Any] = {"job_id": job_id}
        if mfu is not None:
            body["mfu"] = mfu
        if tokens is not None:
            body["tokens"] = tokens
        return JobReport.model_validate(self._core.post("/models/reports", body))

    def compute_projection(self, **params: Any) -> ComputeProjection:
        """Planned GPU-hours as FLOP against the AI Act lines: `proposal=`, `allocation=` or
        `gpu_hours=` (with `gpu_type=`), optionally `model=`, `mfu=`, `purpose=`."""
        return ComputeProjection.model_validate(self._core.get("/models/projection", params))

    def rules(self) -> RulesOut:
        """The AI Act's thresholds for models, as this factory applies them."""
        return RulesOut.model_validate(self._core.get("/models/rules"))

    # --- AI systems and their risk classification ---------------------------------------

    def questionnaire(self) -> dict[str, Any]:
        """The rule book the classification walks (questions, tiers, obligations), as the
        JSON the API serves: its field names are the rule book file's."""
        result: dict[str, Any] = self._core.get("/ai-act/questionnaire")
        return result

    def systems(self, limit: int = 100, offset: int = 0, **filters: Any) -> Listing[AiSystem]:
        """The AI systems one may see; filters: project, tier."""
        params = {"limit": limit, "offset": offset, **filters}
        return self._core.listing(AiSystem, "/ai-systems", params)

    def system(self, ref: str) -> AiSystem:
        """One AI system by id or name."""
        return AiSystem.model_validate(self._core.get(f"/ai-systems/{ref}"))

    def register_system(self, draft: AiSystemDraft) -> AiSystem:
        """Register an AI system."""
        return AiSystem.model_validate(self._core.post("/ai-systems", draft))

    def classification(self, ref: str) -> Classification:
        """The system's current classification: answers so far, next question or result."""
        answer = self._core.get(f"/ai-systems/{ref}/classification")
        return Classification.model_validate(answer)

    def answer_classification(self, ref: str, answers: Mapping[str, Any]) -> Classification:
        """Record answers by question id (yes-no, an option id, or option ids) and walk on."""
        path = f"/ai-systems/{ref}/classification/answers"
        return Classification.model_validate(self._core.post(path, {"answers": answers}))

    def classification_result(self, ref: str) -> ResultOut:
        """The finished classification's tier and obligations."""
        answer = self._core.get(f"/ai-systems/{ref}/classification/result")
        return ResultOut.model_validate(answer)

    def classifications(self, ref: str) -> list[ClassificationSummary]:
        """Every classification of the system, the current one and those before it."""
        return self._core.items(ClassificationSummary, f"/ai-systems/{ref}/classifications")

    def start_classification(self, ref: str) -> Classification:
        """Start a new classification of the system; earlier ones are kept."""
        response = self._core.request("POST", f"/ai-systems/{ref}/classifications")
        return Classification.model_validate(response.json())

    # --- regulatory sandboxes -----------------------------------------------------------

    def sandbox(self, allocation_id: int) -> Sandbox:
        """The sandbox an allocation is part of."""
        return Sandbox.model_validate(self._core.get(f"/allocations/{allocation_id}/sandbox"))

    def mark_sandbox(self, allocation_id: int, draft: SandboxDraft) -> Sandbox:
        """Mark an allocation as part of a sandbox."""
        answer = self._core.send("PUT", f"/allocations/{allocation_id}/sandbox", draft)
        return Sandbox.model_validate(answer)

    def file_sandbox_document(
        self, allocation_id: int, kind: str, text: str, media_type: str = "text/markdown"
    ) -> Sandbox:
        """File the sandbox `plan` or `exit-report` as text or Markdown."""
        response = self._core.request(
            "PUT",
            f"/allocations/{allocation_id}/sandbox/{kind}",
            content=text.encode(),
            headers={"Content-Type": media_type},
        )
        return Sandbox.model_validate(response.json())

    def sandbox_document(self, allocation_id: int, kind: str) -> str:
        """The sandbox `plan` or `exit-report` as filed."""
        return self._core.request("GET", f"/allocations/{allocation_id}/sandbox/{kind}").text
