"""The lease rules (domain/leases.py): property tests of the one promise they make, that
no two servers ever act as the same role at one instant, given monotonic clocks whose rates
differ from the store's by less than the terms allow, replies that are late or lost, and
servers that stop renewing (die) at any moment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fabriek.domain.leases import (
    DISPATCHER,
    Lease,
    LeaseTerms,
    Outcome,
    acting_until,
    claim,
    may_act,
)

TERMS = LeaseTerms(ttl_s=6.0, renew_every_s=1.5, margin_s=1.0)
T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def at(ms: int) -> datetime:
    return T0 + timedelta(milliseconds=ms)


@dataclass(frozen=True)
class Attempt:
    """One request of a server: sent at `send_ms` (store time), handled by the store
    `to_db_ms` later, its answer back `back_ms` after that, or never (`lost`)."""

    node: int
    send_ms: int
    to_db_ms: int
    back_ms: int
    lost: bool


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[float], list[Attempt]]:
    """Three servers, each with a clock of its own rate (within the safe drift), each
    sending one request at a time, at gaps a slow or paused server might leave."""
    drift = TERMS.safe_drift() * 0.99
    rates = [draw(st.floats(1 - drift, 1 + drift)) for _ in range(3)]
    attempts: list[Attempt] = []
    for node in range(3):
        t = draw(st.integers(0, 3000))
        for _ in range(draw(st.integers(1, 12))):
            to_db = draw(st.integers(0, 3000))
            back = draw(st.integers(0, 3000))
            lost = draw(st.booleans()) and draw(st.booleans())
            attempts.append(Attempt(node, t, to_db, back, lost))
            # The next request leaves after this one's answer (or its time-out).
            t += to_db + back + draw(st.integers(0, 9000))
    return rates, attempts


def acting_intervals(rates: list[float], attempts: list[Attempt]) -> list[tuple[int, float, float]]:
    """Replay the attempts through the store in the order it handled them; each server's
    stretches of store time in which it believed it held the role: (node, from, to)."""
    lease: Lease | None = None
    answers: list[tuple[int, int, Outcome, int]] = []  # (arrives, node, outcome, sent)
    for a in sorted(attempts, key=lambda a: (a.send_ms + a.to_db_ms, a.node)):
        result = claim(lease, DISPATCHER, f"node{a.node}", at(a.send_ms + a.to_db_ms), TERMS)
        if result.lease is not None:
            lease = result.lease
        if not a.lost:
            answers.append((a.send_ms + a.to_db_ms + a.back_ms, a.node, result.outcome, a.send_ms))
    intervals: list[tuple[int, float, float]] = []
    for node in range(3):
        deadline: float | None = None  # in store time
        begun: float | None = None
        for arrives, _n, outcome, sent in sorted(
            (x for x in answers if x[1] == node), key=lambda x: x[0]
        ):
            if deadline is not None and begun is not None:
                # It acted from `begun` until its deadline passed or this answer came.
                intervals.append((node, begun, min(deadline, arrives)))
            if outcome == Outcome.REFUSED:
                deadline, begun = None, None
                continue
            # Its own clock reads sent*rate when it sends; the deadline on its clock is
            # reached in store time at acting_until(...)/rate.
            local_deadline = acting_until(sent * rates[node] / 1000, TERMS)
            deadline, begun = local_deadline / rates[node] * 1000, arrives
        if deadline is not None and begun is not None:
            intervals.append((node, begun, deadline))
    return [(n, a, b) for n, a, b in intervals if a < b]


@given(histories())
def test_no_two_servers_ever_act_at_one_instant(history: tuple[list[float], list[Attempt]]) -> None:
    rates, attempts = history
    intervals = acting_intervals(rates, attempts)
    for i, (n1, a1, b1) in enumerate(intervals):
        for n2, a2, b2 in intervals[i + 1 :]:
            if n1 != n2:
                assert not (a1 < b2 and a2 < b1), (n1, a1, b1, n2, a2, b2)


@given(histories())
def test_the_epoch_grows_at_every_change_of_holder(
    history: tuple[list[float], list[Attempt]],
) -> None:
    _rates, attempts = history
    lease: Lease | None = None
    for a in sorted(attempts, key=lambda a: (a.send_ms + a.to_db_ms, a.node)):
        result = claim(lease, DISPATCHER, f"node{a.node}", at(a.send_ms + a.to_db_ms), TERMS)
        if result.lease is None:
            assert result.outcome == Outcome.REFUSED and lease is not None
            continue
        if lease is not None:
            same = result.lease.holder == lease.holder
            assert result.lease.epoch == lease.epoch + (0 if same else 1)
            assert result.replaces == lease
        lease = result.lease


@given(st.integers(0, 100_000), st.integers(1, 60_000))
def test_a_dead_holders_role_is_taken_once_its_lease_ran_out(renewed: int, later: int) -> None:
    lease = claim(None, DISPATCHER, "a", at(renewed), TERMS).lease
    assert lease is not None
    attempt = claim(lease, DISPATCHER, "b", at(renewed + later), TERMS)
    if later > TERMS.ttl_s * 1000:
        assert attempt.outcome == Outcome.TAKEN and attempt.lease is not None
        assert attempt.lease.epoch == 2 and attempt.lease.holder == "b"
    else:
        assert attempt.outcome == Outcome.REFUSED


def test_the_holder_stops_before_the_store_could_give_its_role_away() -> None:
    # Sent at 10 s on its clock: it acts until 15 s; the store frees the role only after
    # 16 s (store time) even if it stamped the renewal the instant the request left.
    assert acting_until(10.0, TERMS) == 15.0
    assert may_act(14.99, 14.0) and not may_act(15.0, 15.0) and not may_act(None, 0.0)
    # The longest a role goes unheld after its holder died: its lease runs out, and then the
    # next contender's attempt (every renew_every_s) takes it.
    assert TERMS.ttl_s + TERMS.renew_every_s < 10


def test_a_clock_drifting_past_the_bound_would_break_the_promise() -> None:
    # Why the margin exists: a clock running 20 % slow believes for 6.25 s of store time
    # what the store holds for 6: another server takes over while it still acts.
    slow = 0.8
    intervals = acting_intervals(
        [slow, 1.0, 1.0],
        [Attempt(0, 0, 0, 0, False), Attempt(1, 6001, 0, 0, False)],
    )
    (n0, _a0, end0), (n1, start1, _b1) = sorted(intervals)
    assert n0 == 0 and n1 == 1 and start1 < end0


@pytest.mark.parametrize(
    ("ttl", "renew", "margin"), [(6.0, 1.5, 0.0), (6.0, 5.5, 1.0), (6.0, 1.0, 6.0)]
)
def test_terms_that_could_lapse_are_refused(ttl: float, renew: float, margin: float) -> None:
    with pytest.raises(ValueError):
        LeaseTerms(ttl_s=ttl, renew_every_s=renew, margin_s=margin)
