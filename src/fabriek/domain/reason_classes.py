"""Why a job waits, as one of a few classes: a label a metric may carry.

A waiting job's reason is free text for its user ("Resources: first in line: ...",
"SiteUnavailable: amsterdam: connection refused (...)", "NotBeforeStartTime: starts no
earlier than 2026-12-06 09:00 UTC"). A metric labelled with that text would grow a series
per site error message and per start time; its class is the code before the colon (the
codes `squeue` users know), or one of the plain phrases the dispatcher writes, and
anything else is `Other`. The set is closed: whatever the text, the class is in it.
"""

from __future__ import annotations

# The scheduler's wait codes (scheduler.reasons.WaitReason; a test keeps the two in step),
# and the codes the dispatcher writes before its words.
WAIT_CODES: frozenset[str] = frozenset(
    {
        "Priority",
        "Resources",
        "ReservedForLargerJob",
        "AllocationExhausted",
        "NoAllocation",
        "NotBeforeStartTime",
        "NeverFits",
        "PowerCapped",
        "CleanerHour",
        "ResidencyConstraint",
        "TermsNotAccepted",
        "ContainerSites",
        "SiteUnavailable",
        "DatasetUnavailable",
        "Preempted",
    }
)
# Plain phrases (lower case, at the start of the text) and their class.
PHRASES: tuple[tuple[str, str], ...] = (
    ("queued on the cluster", "QueuedOnCluster"),
    ("queued", "Queued"),
    ("requeued after preemption", "Requeued"),
    ("waiting for the image registry", "ImageRegistry"),
    ("starting on", "Starting"),
)
OTHER = "Other"
# No reason at all (a job the scheduler has not yet looked at, written by an old version).
NONE = "None"
REASON_CLASSES: frozenset[str] = WAIT_CODES | {c for _, c in PHRASES} | {OTHER, NONE}
# How much of a reason decides its class: the longest code or phrase, and its colon.
PREFIX_CHARS = 1 + max(len(s) for s in (*WAIT_CODES, *(p for p, _ in PHRASES)))


def reason_class(reason: str | None) -> str:
    """The class of a job's reason: always a member of `REASON_CLASSES`.

    Only the first `PREFIX_CHARS` characters are read, so a store may group reasons by
    that prefix and classify the groups."""
    head = (reason or "")[:PREFIX_CHARS].strip()
    if not head:
        return NONE
    code = head.split(":", 1)[0].strip()
    if ":" in head and code in WAIT_CODES:
        return code
    lowered = head.lower()
    for phrase, cls in PHRASES:
        if lowered == phrase or lowered.startswith((phrase + ":", phrase + " ", phrase + "(")):
            return cls
    return OTHER
