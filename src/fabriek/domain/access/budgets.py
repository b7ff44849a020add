"""GPU-hour budgets: what an allocation has consumed, committed and left, and when to warn.

Charges are in normalised GPU-hours: a job holding `gpus` GPUs of a type with factor
`f` for `s` seconds charges `gpus * s / 3600 * f`. Consumed counts finished jobs and the
time running jobs have used so far; committed is the rest of running jobs' time limits;
a job starts only if its whole time limit fits in what is left (Slurm's GrpTRESMins
works the same way).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from fabriek.domain.units import GpuHours, gpu_hours


def charge(gpus: int, seconds: float, factor: float) -> GpuHours:
    """Normalised GPU-hours of `gpus` GPUs held for `seconds` at charge `factor`."""
    return gpu_hours(gpus, max(0.0, seconds)) * factor


@dataclass(frozen=True)
class Budget:
    """An allocation's budget at one moment, in normalised GPU-hours."""

    awarded: GpuHours
    consumed: GpuHours
    committed: GpuHours

    @property
    def remaining(self) -> GpuHours:
        return self.awarded - self.consumed - self.committed

    @property
    def used_fraction(self) -> float:
        """Consumed over awarded (1 when nothing was awarded)."""
        return self.consumed / self.awarded if self.awarded.value > 0 else 1.0


class Notice(StrEnum):
    """The budget notices members get, each at most once per allocation."""

    USED_50 = "used-50"
    USED_80 = "used-80"
    USED_100 = "used-100"
    ENDS_30 = "ends-in-30-days"
    ENDS_14 = "ends-in-14-days"
    ENDS_7 = "ends-in-7-days"


_USED = ((Notice.USED_100, 1.0), (Notice.USED_80, 0.8), (Notice.USED_50, 0.5))
_ENDS = ((Notice.ENDS_7, 7.0), (Notice.ENDS_14, 14.0), (Notice.ENDS_30, 30.0))


def due_notices(used_fraction: float, days_left: float, sent: Iterable[Notice]) -> list[Notice]:
    """The notices an allocation owes now: only the most urgent threshold of each kind that
    was crossed and not yet sent. A budget that jumps from 40 % to 90 % gets one "80 %"
    notice, not two; the thresholds it skipped are marked sent with it by the caller, so
    nothing older arrives later."""
    done = set(sent)
    owed = []
    for ladder, value, above in ((_USED, used_fraction, True), (_ENDS, days_left, False)):
        for notice, threshold in ladder:
            crossed = value >= threshold if above else 0 <= value <= threshold
            if crossed:
                if notice not in done:
                    owed.append(notice)
                break
    return owed


def superseded(notice: Notice) -> list[Notice]:
    """The milder notices of the same kind a notice makes pointless to send later."""
    for ladder in (_USED, _ENDS):
        names = [n for n, _ in ladder]
        if notice in names:
            return names[names.index(notice) + 1 :]
    return []
