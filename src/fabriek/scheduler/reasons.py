"""Why a job waits, in the codes `squeue` users know, and whether it can ever run."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Protocol

from fabriek.scheduler.snapshot import SiteState


class WaitReason(StrEnum):
    """The reason column of a waiting job: a stable code, with words from `words()`."""

    PRIORITY = "Priority"
    RESOURCES = "Resources"
    RESERVED_FOR_LARGER_JOB = "ReservedForLargerJob"
    ALLOCATION_EXHAUSTED = "AllocationExhausted"
    NO_ALLOCATION = "NoAllocation"
    NOT_BEFORE_START_TIME = "NotBeforeStartTime"
    NEVER_FITS = "NeverFits"
    POWER_CAPPED = "PowerCapped"
    CLEANER_HOUR = "CleanerHour"
    RESIDENCY_CONSTRAINT = "ResidencyConstraint"
    TERMS_NOT_ACCEPTED = "TermsNotAccepted"

    def words(self) -> str:
        """One sentence a user can act on."""
        return _WORDS[self]


_WORDS: dict[WaitReason, str] = {
    WaitReason.PRIORITY: "jobs of higher priority are waiting for the GPUs this job needs",
    WaitReason.RESOURCES: (
        "first in line: waiting for enough GPUs to free up; they are reserved for it"
    ),
    WaitReason.RESERVED_FOR_LARGER_JOB: (
        "GPUs are free, but reserved for a higher-priority job that starts before this "
        "job's time limit would end; a shorter time limit may let it start now"
    ),
    WaitReason.ALLOCATION_EXHAUSTED: (
        "the project's allocation cannot cover GPUs x time limit beside what its running "
        "jobs may still use"
    ),
    WaitReason.NO_ALLOCATION: "the project has no active allocation",
    WaitReason.NOT_BEFORE_START_TIME: "the job asked not to start before a later time",
    WaitReason.NEVER_FITS: (
        "no site has enough GPUs of the requested type for this job; it can never start"
    ),
    WaitReason.POWER_CAPPED: (
        "the sites that could run it have no power budget left for the hours it may run"
    ),
    WaitReason.CLEANER_HOUR: (
        "the job may wait, and a later hour before its latest start is forecast to be "
        "cleaner; it is held until then"
    ),
    WaitReason.RESIDENCY_CONSTRAINT: (
        "its datasets may be processed only at some sites, and none of those can run it now; "
        "GPUs elsewhere stay out of bounds for it"
    ),
    WaitReason.TERMS_NOT_ACCEPTED: (
        "its user has not accepted the current terms of use of the sites that could run it; "
        "see `fabriek terms`"
    ),
}


class GpuRequest(Protocol):
    """What `never_fits` needs of a job: a pending job and a `JobSpec` both qualify."""

    @property
    def gpus(self) -> int: ...

    @property
    def gpu_type(self) -> str | None: ...


def never_fits(job: GpuRequest, sites: Iterable[SiteState]) -> bool:
    """Whether no site could ever run `job`, even empty.

    The placement rule decides: a job that fits on one node (of its type, at any site)
    must go on one node; a bigger one needs enough whole nodes of one type and size at
    one site. Usable at submission (with every node counted free) and in every cycle.
    """
    if job.gpus <= 0:
        return False
    pools: dict[tuple[str, str, int], int] = {}
    for site in sites:
        for node in site.nodes:
            if job.gpu_type is None or node.gpu_type == job.gpu_type:
                key = (site.name, node.gpu_type, node.gpus)
                pools[key] = pools.get(key, 0) + 1
    if any(size >= job.gpus for (_, _, size) in pools):
        return False
    return not any(size > 0 and count * size >= job.gpus for (_, _, size), count in pools.items())
