"""What a cycle decides: start, preempt, or keep waiting with a reason."""

from __future__ import annotations

from dataclasses import dataclass, field

from fabriek.scheduler.reasons import WaitReason
from fabriek.scheduler.snapshot import NodeShare


@dataclass(frozen=True, slots=True)
class Start:
    """Start `job_id` on `site`, with these GPUs per node."""

    job_id: int
    site: str
    nodes: tuple[NodeShare, ...]


@dataclass(frozen=True, slots=True)
class Preempt:
    """Stop `job_id` and requeue it, to make room for `for_job_id`; `words` say why."""

    job_id: int
    for_job_id: int
    words: str


# Not frozen: a cycle makes one per waiting job (100,000 in a big queue), and a frozen
# dataclass is several times slower to build. Treat it as immutable all the same.
@dataclass(slots=True)
class Wait:
    """Keep `job_id` waiting; `detail` adds specifics (numbers) where there are some."""

    job_id: int
    reason: WaitReason
    detail: str = ""

    @property
    def words(self) -> str:
        """The reason in words, with the detail if any."""
        base = self.reason.words()
        return f"{base} ({self.detail})" if self.detail else base


def shortfall_words(need: float, free: float) -> str:
    """How far a budget falls short of a job's time limit, in GPU-hours."""
    return (
        f"its time limit needs {need:,.2f} GPU-h, the allocation has {free:,.2f} GPU-h "
        f"left: {need - free:,.2f} GPU-h short"
    )


class ShortfallWait(Wait):
    """A `Wait` with reason `AllocationExhausted` whose detail is put in words when read.

    A cycle over a big queue may keep a hundred thousand jobs waiting for their budgets,
    and their words change every cycle (the budget left does); most are never read. It
    equals the `Wait` with the words spelled out."""

    __slots__ = ("_free", "_need")

    def __init__(self, job_id: int, need: float, free: float) -> None:
        self.job_id = job_id
        self.reason = WaitReason.ALLOCATION_EXHAUSTED
        self._need = need
        self._free = free

    @property
    def detail(self) -> str:  # type: ignore[override]
        """The shortfall in words."""
        return shortfall_words(self._need, self._free)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Wait):
            return NotImplemented
        return (self.job_id, self.reason, self.detail) == (
            other.job_id,
            other.reason,
            other.detail,
        )

    __hash__ = None  # type: ignore[assignment]


Decision = Start | Preempt | Wait


@dataclass(frozen=True, slots=True)
class Reservation:
    """Where and when the first job that cannot start now will start at the latest,
    assuming running jobs end by their time limits. Backfilled jobs never delay it."""

    job_id: int
    start_s: float
    site: str
    nodes: tuple[NodeShare, ...]


@dataclass(frozen=True, slots=True)
class CycleResult:
    """The decisions of one cycle, in the order to carry them out (preemptions come
    before the start they make room for), and the reservation if one was made.
    `wake_s`: the earliest time a job held back for a cleaner hour wants a new cycle."""

    decisions: list[Decision] = field(default_factory=list)
    reservation: Reservation | None = None
    wake_s: float | None = None

    @property
    def starts(self) -> list[Start]:
        """The start decisions, in order."""
        return [d for d in self.decisions if isinstance(d, Start)]

    @property
    def preemptions(self) -> list[Preempt]:
        """The preempt decisions, in order."""
        return [d for d in self.decisions if isinstance(d, Preempt)]

    @property
    def waits(self) -> list[Wait]:
        """The wait decisions, in order of priority."""
        return [d for d in self.decisions if isinstance(d, Wait)]
