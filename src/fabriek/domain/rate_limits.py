"""Rate limits: how often one caller (a token, a client address) may ask, as the generic
cell rate algorithm (GCRA) that ATM switches and many API gateways use. Pure: no I/O, time
comes in as an argument.

A limit is a sustained rate and a burst. Each caller has one number of state, its
*theoretical arrival time* (`tat`): when its next request would be on time if it asked at
exactly the sustained rate. A request is admitted while it is at most `burst - 1` intervals
early; each admitted request moves `tat` one interval on. So a caller who has been quiet may
send `burst` requests at once, and after that one per interval; no window edges (unlike a
fixed one-minute window, which lets twice the limit through across an edge) and no timers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SLACK_S = 1e-6
"""How much earlier than its turn a request may come and still be on time: a microsecond,
so that the rounding of sums of floating-point seconds never refuses a punctual caller."""


@dataclass(frozen=True)
class Rate:
    """At most `per_s` requests a second sustained, and `burst` at once after a quiet spell."""

    per_s: float
    burst: int

    def __post_init__(self) -> None:
        if not (self.per_s > 0 and math.isfinite(self.per_s)):
            raise ValueError(f"a rate must be a positive number per second, not {self.per_s}")
        if self.burst < 1:
            raise ValueError(f"a burst must be at least 1, not {self.burst}")

    @property
    def interval_s(self) -> float:
        """Seconds between two requests at the sustained rate."""
        return 1.0 / self.per_s

    @property
    def tolerance_s(self) -> float:
        """How early a request may be and still be admitted: `burst - 1` intervals."""
        return (self.burst - 1) * self.interval_s

    def describe(self) -> str:
        """The rate in words, for a refusal's message (`20 a minute, 30 at once`)."""
        if self.per_s >= 1:
            sustained = f"{self.per_s:g} a second"
        else:
            sustained = f"{self.per_s * 60:g} a minute"
        return f"{sustained}, {self.burst} at once"


@dataclass(frozen=True)
class Verdict:
    """Whether a request is admitted, the caller's state after it, and (refused) how many
    seconds until a request would be admitted."""

    admitted: bool
    tat: float
    retry_after_s: float


def admit(tat: float | None, now: float, rate: Rate) -> Verdict:
    """Admit or refuse one request at `now` from a caller whose state is `tat` (None: a
    caller not seen, or forgotten once its state had fallen into the past)."""
    base = now if tat is None or tat < now else tat
    early = base - now
    if early > rate.tolerance_s + SLACK_S:
        return Verdict(False, base, early - rate.tolerance_s)
    return Verdict(True, base + rate.interval_s, 0.0)


def peek(tat: float | None, now: float, rate: Rate) -> Verdict:
    """What `admit` would answer, without spending anything: the state is left as it is."""
    verdict = admit(tat, now, rate)
    return Verdict(verdict.admitted, now if tat is None else tat, verdict.retry_after_s)


def retry_after_header(seconds: float) -> str:
    """`Retry-After` in whole seconds, rounded up and at least 1 (a client that retries
    sooner is refused again)."""
    return str(max(1, math.ceil(seconds)))


def is_idle(tat: float, now: float) -> bool:
    """Whether a caller's state carries nothing: it would be treated as one never seen, so
    it may be forgotten (this bounds the memory a table of callers takes)."""
    return tat <= now
