"""The words of the AI model registry: roles under the AI Act, openness, modalities,
architectures, what a job does to a model, the compute measures, estimation methods, and
the documentation's audiences and sections."""

from __future__ import annotations

from enum import StrEnum


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
