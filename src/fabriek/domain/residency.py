"""Where a job may run, given the datasets it reads: the residency rule for jobs.

A job names datasets as `name`, `project/name` (another project's, granted to the job's
project), optionally with `@version`. At submission each is resolved to the version it will
read and its terms (`JobDataset`); from then on the rule is pure: a site qualifies when every
dataset allows it (`fabriek.domain.datasets.residency_allows`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fabriek.domain.datasets import Residency, residency_allows

# Where a job's datasets are, decrypted, while it runs: a directory with one entry per
# dataset, named as the dataset.
DATASETS_ENV = "FABRIEK_DATASETS"


@dataclass(frozen=True, slots=True)
class JobDataset:
    """A dataset version a job reads, with the terms the residency rule needs."""

    dataset_id: int
    project: str
    name: str
    version: int
    version_id: int
    residency: Residency
    personal: bool

    def to_json(self) -> dict[str, Any]:
        """As stored with the job."""
        return {
            "dataset_id": self.dataset_id,
            "project": self.project,
            "name": self.name,
            "version": self.version,
            "version_id": self.version_id,
            "residency": self.residency.value,
            "personal": self.personal,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobDataset:
        """From what `to_json` stored."""
        return cls(
            dataset_id=int(data["dataset_id"]),
            project=str(data["project"]),
            name=str(data["name"]),
            version=int(data["version"]),
            version_id=int(data["version_id"]),
            residency=Residency(data["residency"]),
            personal=bool(data["personal"]),
        )

    @property
    def label(self) -> str:
        return f"{self.project}/{self.name}@{self.version}"


@dataclass(frozen=True, slots=True)
class SiteTerms:
    """What the residency rule needs to know of a site."""

    name: str
    jurisdiction: str
    gdpr_ready: bool


@dataclass(frozen=True, slots=True)
class ResidencyVerdict:
    """The sites a job's datasets allow, and why each other site is excluded."""

    allowed: frozenset[str]
    excluded: Mapping[str, str]

    def explain(self) -> str:
        """One sentence: which sites are excluded and why (for the job's reason)."""
        if not self.excluded:
            return "its datasets allow every site"
        why = "; ".join(f"{site}: {reason}" for site, reason in sorted(self.excluded.items()))
        allowed = ", ".join(sorted(self.allowed)) or "none"
        return f"its datasets allow only: {allowed} ({why})"


def job_sites(datasets: Sequence[JobDataset], sites: Iterable[SiteTerms]) -> ResidencyVerdict:
    """Which sites may run a job that reads `datasets`: those every dataset allows. The
    first dataset that excludes a site gives the reason."""
    allowed: set[str] = set()
    excluded: dict[str, str] = {}
    for site in sites:
        for ds in datasets:
            reason = residency_allows(
                ds.residency, site.jurisdiction, site.gdpr_ready, personal=ds.personal
            )
            if reason is not None:
                excluded[site.name] = f"{ds.label}: {reason}"
                break
        else:
            allowed.add(site.name)
    return ResidencyVerdict(frozenset(allowed), excluded)
