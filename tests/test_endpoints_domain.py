"""The endpoints' pure rules: names and drafts, how many replicas an endpoint should have,
and rolling updates that never leave fewer healthy replicas than before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from fabriek.domain.endpoints import (
    CRASH_LIMIT,
    RENEW_BEFORE_S,
    REPLICA_TIME_LIMIT_S,
    SCALE_UP_QUEUE,
    EndpointDraft,
    ReplicaLoad,
    RolloutReplica,
    desired_replicas,
    may_start_more,
    name_problem,
    needs_renewal,
    queue_from_metrics,
    rollout_step,
    split_model,
)
from fabriek.services.endpoints.scaling import _DIED, SeenEndpoint, SeenReplica, plan_round


@st.composite
def loads(draw: st.DrawFn) -> ReplicaLoad:
    low = draw(st.integers(0, 8))
    high = draw(st.integers(max(low, 1), 10))
    return ReplicaLoad(
        min_replicas=low,
        max_replicas=high,
        healthy=draw(st.integers(0, 12)),
        starting=draw(st.integers(0, 4)),
        waiting=draw(st.floats(0, 200)),
        idle_for_s=draw(st.none() | st.floats(0, 10_000)),
        idle_s=draw(st.integers(10, 5000)),
        demand=draw(st.booleans()),
    )


@given(loads())
def test_the_count_stays_within_bounds_and_keeps_one_for_a_waiting_request(
    load: ReplicaLoad,
) -> None:
    want = desired_replicas(load)
    assert load.min_replicas <= want <= load.max_replicas
    if load.demand:
        assert want >= 1


@given(loads())
def test_the_count_moves_one_step_at_a_time_unless_bounds_force_it(load: ReplicaLoad) -> None:
    live = load.healthy + load.starting
    want = desired_replicas(load)
    if load.min_replicas <= live <= load.max_replicas and not (load.demand and live == 0):
        assert abs(want - live) <= 1


@given(st.integers(1, 5), st.integers(1, 5))
def test_a_long_queue_adds_a_replica_and_a_short_one_removes_one(healthy: int, spare: int) -> None:
    high = healthy + spare
    busy = ReplicaLoad(1, high, healthy, 0, (SCALE_UP_QUEUE + 1) * healthy, 0.0, 60)
    assert desired_replicas(busy) == healthy + 1
    quiet = ReplicaLoad(1, high, healthy, 0, 0.0, 0.0, 60)
    assert desired_replicas(quiet) == max(1, healthy - 1)


def test_scale_to_zero_only_after_the_idle_time_and_back_on_demand() -> None:
    recent = ReplicaLoad(0, 2, 1, 0, 0.0, idle_for_s=30, idle_s=60)
    assert desired_replicas(recent) == 1
    idle = ReplicaLoad(0, 2, 1, 0, 0.0, idle_for_s=61, idle_s=60)
    assert desired_replicas(idle) == 0
    woken = ReplicaLoad(0, 2, 0, 0, 0.0, idle_for_s=0, idle_s=60, demand=True)
    assert desired_replicas(woken) == 1
    # A new endpoint with min 0 starts nothing until its first request.
    assert desired_replicas(ReplicaLoad(0, 2, 0, 0, 0.0, None, 60)) == 0


@st.composite
def fleets(draw: st.DrawFn) -> tuple[list[RolloutReplica], int]:
    n = draw(st.integers(1, 6))
    replicas = [
        RolloutReplica(i, draw(st.sampled_from(["m:1", "m:2"])), draw(st.booleans()))
        for i in range(n)
    ]
    return replicas, draw(st.integers(1, 6))


@given(fleets())
def test_a_rollout_step_never_lowers_the_healthy_count(
    fleet: tuple[list[RolloutReplica], int],
) -> None:
    replicas, target = fleet
    step = rollout_step(replicas, "m:2", target)
    healthy_before = sum(r.healthy for r in replicas)
    drained = set(step.drain)
    healthy_after = sum(r.healthy for r in replicas if r.replica_id not in drained)
    assert healthy_after >= min(healthy_before, max(target, 1))
    # Only old replicas are drained, and at most one new replica starts at a time.
    assert all(r.model == "m:1" for r in replicas if r.replica_id in drained)
    assert step.start <= 1


def test_a_rollout_runs_to_the_end_replica_by_replica() -> None:
    replicas = [RolloutReplica(1, "m:1", True), RolloutReplica(2, "m:1", True)]
    next_id = 3
    for _ in range(10):
        step = rollout_step(replicas, "m:2", 2)
        if step.idle and all(r.model == "m:2" for r in replicas):
            break  # idle also while a new one starts: done only with no old one left
        replicas = [r for r in replicas if r.replica_id not in step.drain]
        # The new one started last round is healthy by now.
        replicas = [RolloutReplica(r.replica_id, r.model, True) for r in replicas]
        for _ in range(step.start):
            replicas.append(RolloutReplica(next_id, "m:2", False))
            next_id += 1
        assert sum(r.healthy for r in replicas) >= 2
    assert {r.model for r in replicas} == {"m:2"} and len(replicas) == 2


def test_names_models_and_bounds() -> None:
    assert name_problem("chat-1") is None
    assert name_problem("Chat") and name_problem("-x") and name_problem("x-")
    assert split_model("tiny:1.0") == ("tiny", "1.0") and split_model("weights@2") is None
    with pytest.raises(ValidationError):
        EndpointDraft(name="chat", model="weights", min_replicas=3, max_replicas=2)
    assert EndpointDraft(name="chat", model="weights", min_replicas=0).top == 1


def test_the_queue_is_read_from_vllm_metrics() -> None:
    text = (
        "# HELP vllm:num_requests_waiting Requests waiting\n"
        'vllm:num_requests_waiting{model_name="a"} 3.0\n'
        'vllm:num_requests_waiting_total{model_name="a"} 99\n'
        "vllm:num_requests_running 2\n"
    )
    assert queue_from_metrics(text) == 3.0
    assert queue_from_metrics(text, "vllm:num_requests_running") == 2.0
    assert queue_from_metrics("") == 0.0


def test_starts_stop_after_replicas_keep_dying_before_they_answer() -> None:
    assert may_start_more(0) and may_start_more(CRASH_LIMIT - 1)
    assert not may_start_more(CRASH_LIMIT)


@given(st.none() | st.integers(-10_000, 200_000))
def test_a_replica_is_renewed_only_within_the_hour_before_its_time_limit(
    left_s: int | None,
) -> None:
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    ends_at = None if left_s is None else now + timedelta(seconds=left_s)
    assert needs_renewal(ends_at, now) == (left_s is not None and left_s <= RENEW_BEFORE_S)


def _seen(*replicas: SeenReplica, min_replicas: int = 1) -> SeenEndpoint:
    return SeenEndpoint(
        endpoint_id=1, model="m:1", deleted=False, min_replicas=min_replicas, max_replicas=1,
        idle_s=600, last_request_at=None, replicas=list(replicas),
    )  # fmt: skip


def test_a_replica_near_its_time_limit_hands_over_to_a_successor_first() -> None:
    """The job's time limit (a day: what the scheduler reserves of the budget) never ends
    the serving: a successor starts, and only once it answers is the old one drained."""
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    assert REPLICA_TIME_LIMIT_S <= 24 * 3600
    old = SeenReplica(1, "healthy", "m:1", "running", None, answers=True,
                      ends_at=now + timedelta(minutes=30))  # fmt: skip
    first = plan_round(_seen(old), now)
    assert first.start == 1 and first.drain == []
    new = SeenReplica(2, "starting", "m:1", "running", None, answers=False,
                      ends_at=now + timedelta(hours=24))  # fmt: skip
    waiting = plan_round(_seen(old, new), now)
    assert waiting.start == 0 and waiting.drain == []
    new.answers = True
    handed = plan_round(_seen(old, new), now)
    assert handed.start == 0 and [i for i, _ in handed.drain] == [1]
    assert "time limit" in handed.drain[0][1]
    # Far from its time limit nothing is done; an endpoint going to zero is not renewed.
    old.ends_at = now + timedelta(hours=5)
    assert plan_round(_seen(old), now).start == 0
    old.ends_at, old.answers = now + timedelta(minutes=30), True
    idle = plan_round(_seen(old, min_replicas=0), now)
    assert idle.start == 0 and [i for i, _ in idle.drain] == [1]


def test_a_preempted_replica_is_replaced_at_once_and_not_counted_as_a_crash() -> None:
    """A replica is a job of its project: the track's preemption rules may stop it; the
    next round ends it (its job is not requeued behind the endpoint's back) and starts
    another, which waits for capacity like any job."""
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    stopped = SeenReplica(1, "healthy", "m:1", "preempted", "preempted by a higher tier")
    plan = plan_round(_seen(stopped), now)
    assert plan.end == [(1, "replaced: its job was preempted")] and plan.start == 1
    assert not plan.end[0][1].startswith(_DIED)
