"""The demo factory's support centre content: experts in every hub's network and the
first knowledge-base articles (from `fabriek/config/knowledge_demo.toml`). Part of
`fabriek demo load`; the people are invented."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from fabriek.domain.geography import Hub
from fabriek.domain.support.expertise import ExpertDraft
from fabriek.domain.support.knowledge import ArticleDraft
from fabriek.services.config_files import load_config_file
from fabriek.services.support.expertise import add_expert
from fabriek.services.support.knowledge import add_article

# (name, organisation, hub, skills, languages, hours per month): at least one per hub.
EXPERTS: list[tuple[str, str, Hub, list[str], list[str], float]] = [
    ("Lotte Hendriks", "Technische Universiteit Delft", Hub.ZUID_HOLLAND,
     ["distributed-training", "gpu-performance", "hpc-slurm"], ["nl", "en"], 16),
    ("Daan Vermeulen", "TNO", Hub.ZUID_HOLLAND,
     ["ai-act", "responsible-ai", "data-governance"], ["nl", "en"], 12),
    ("Fenna de Boer", "Rijksuniversiteit Groningen", Hub.NOORD_NEDERLAND,
     ["energy-efficient-ai", "earth-observation", "scientific-machine-learning"], ["nl", "en"],
     10),
    ("Bram Kuipers", "Universiteit Twente", Hub.OOST_NEDERLAND,
     ["robotics", "computer-vision-manufacturing", "distributed-training"], ["nl", "en", "de"],
     12),
    ("Noor Willems", "Fontys Hogescholen", Hub.BRAINPORT,
     ["computer-vision-manufacturing", "mlops", "containers"], ["nl", "en"], 16),
    ("Sophie Bakker", "Universiteit Utrecht", Hub.MIDDEN_NEDERLAND,
     ["gdpr-privacy", "data-governance", "synthetic-data"], ["nl", "en"], 8),
    ("Ahmed Yilmaz", "Universiteit van Amsterdam", Hub.AMSTERDAM,
     ["llm-fine-tuning", "llm-inference", "dutch-language-technology"], ["nl", "en", "tr"], 16),
    ("Emma Claessens", "Universiteit Maastricht", Hub.BRIGHTLANDS,
     ["time-series-forecasting", "mlops", "ai-act"], ["nl", "en", "de"], 12),
]  # fmt: skip


def demo_articles() -> list[ArticleDraft]:
    """The shipped demo articles, checked as any article is."""
    return load_config_file(
        None,
        "knowledge_demo.toml",
        "demo articles",
        lambda data: [ArticleDraft.model_validate(a) for a in data["articles"]],
    )


def load_expertise_demo(session: Session, admin_id: int, now: datetime) -> None:
    """Add the demo experts and articles to the session (the demo loader commits)."""
    for name, organisation, hub, skills, languages, hours in EXPERTS:
        email = f"{name.lower().replace(' ', '.')}@experts.demo.fabriek.example"
        add_expert(
            session, admin_id,
            ExpertDraft(name=name, email=email, organisation=organisation, hub=hub,
                        skills=skills, languages=languages, hours_per_month=hours),
            now,
        )  # fmt: skip
    for draft in demo_articles():
        add_article(session, admin_id, draft, now)
