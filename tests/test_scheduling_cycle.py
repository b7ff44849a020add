"""A scheduling cycle's three steps on their own: `decide` on plain values (no store), and
`apply` of a given plan on the real stores. `load` and the three together are covered by
the API, budget and recovery tests, which run the live cycle."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.access.tracks import AccessConfig
from fabriek.domain.job_states import JobState
from fabriek.domain.residency import ResidencyVerdict
from fabriek.scheduler import NodeShare
from fabriek.services.scheduling import CycleInput, CyclePlan, Eviction, Launch, apply, decide
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import AllocationRow, JobEventRow, JobRow, ProjectRow, SiteRow, UserRow
from tests.scheduler.factories import allocation, pending, running, site, snapshot

ACCESS = AccessConfig("test", {}, {"h100": 2.0})


def test_decide_launches_charged_to_the_projects_allocation_at_its_gpu_factor() -> None:
    snap = snapshot([pending(1, gpus=2)], sites=[site(free=[0, 8])])
    plan = decide(CycleInput(snap, {1: "p1"}, {"p1": 7}), ACCESS)
    assert plan.launches == (Launch(1, "s1", (NodeShare("n1", 2),), "h100", 7, 2.0),)
    assert plan.evictions == ()
    assert plan.waits == {}


def test_decide_a_cpu_job_has_no_gpu_type_and_the_factor_of_none() -> None:
    plan = decide(CycleInput(snapshot([pending(1, gpus=0)]), {1: "p1"}, {"p1": 3}), ACCESS)
    (launch,) = plan.launches
    assert (launch.gpu_type, launch.allocation_id, launch.charge_factor) == (None, 3, 1.0)


def test_decide_evicts_a_lower_tier_for_a_higher_one() -> None:
    snap = snapshot(
        [pending(3, gpus=16)],
        sites=[site(free=[0, 8])],
        running_jobs=[running(10, {"n0": 8}, end=1e6, project="play", preemptible=True)],
        allocations=[allocation("p1", tier=1), allocation("play", preemptible=True)],
        now=10.0,
    )
    plan = decide(CycleInput(snap, {3: "p1"}, {"p1": 7}), ACCESS)
    assert plan.evictions == (
        Eviction(10, 3, "Preempted: preempted and requeued for job 3 of tier 1"),
    )
    assert [launch.job_id for launch in plan.launches] == [3]


def test_decide_a_wait_names_the_sites_that_are_down_before_its_own_reason() -> None:
    snap = snapshot([pending(2, gpus=24)])
    cycle = CycleInput(
        snap, {2: "p1"}, {"p1": 7}, down=frozenset({"s2", "s3"}), down_reasons={"s2": "no answer"}
    )
    assert decide(cycle, ACCESS).waits == {
        2: "SiteUnavailable: s2: no answer; s3: unreachable (NeverFits: no site has enough"
        " GPUs of the requested type for this job; it can never start)"
    }


def test_decide_a_residency_wait_explains_the_datasets_terms() -> None:
    snap = snapshot([pending(4, sites=frozenset({"s9"}))])
    verdict = ResidencyVerdict(frozenset({"s9"}), {"s1": "scans: personal data needs GDPR"})
    plan = decide(CycleInput(snap, {4: "p1"}, {"p1": 7}, residency={4: verdict}), ACCESS)
    assert plan.launches == ()
    assert plan.waits[4] == "ResidencyConstraint: " + verdict.explain()


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    """A session on the demo store whose changes are rolled back: `apply` never commits."""
    engine = make_engine(database_url)
    with make_sessions(engine)() as s:
        yield s
        s.rollback()
    engine.dispose()


def _job(session: Session, state: JobState, name: str, **values: object) -> JobRow:
    maria = session.scalars(select(UserRow).where(UserRow.username == "maria")).one()
    project = session.scalars(select(ProjectRow).where(ProjectRow.name == "dutch-llm")).one()
    job = JobRow(project_id=project.id, user_id=maria.id, name=name, command=["true"], gpus=2,
                 nodes=1, cpus=4, memory_gb=8, time_limit_s=3600, state=state.value, **values)  # fmt: skip
    session.add(job)
    session.flush()
    return job


def test_apply_writes_launches_evictions_and_wait_reasons(session: Session) -> None:
    now = datetime.now(UTC)
    site_row = session.scalars(select(SiteRow).order_by(SiteRow.id)).first()
    allocation_id = session.scalars(select(AllocationRow.id)).first()
    assert site_row is not None and allocation_id is not None
    starts = _job(session, JobState.PENDING, "starts")
    waits = _job(session, JobState.PENDING, "waits", reason="Priority: before")
    same = _job(session, JobState.PENDING, "same", reason="Priority: unchanged")
    victim = _job(session, JobState.RUNNING, "victim", site_id=site_row.id)
    ended = _job(session, JobState.COMPLETED, "ended", site_id=site_row.id)
    plan = CyclePlan(
        launches=(
            Launch(starts.id, site_row.name, (NodeShare("n0", 2),), "h100", allocation_id, 2.0),
        ),
        evictions=(
            Eviction(victim.id, starts.id, "Preempted: for a higher tier"),
            Eviction(ended.id, starts.id, "Preempted: too late"),
        ),
        waits={waits.id: "Resources: " + "x" * 600, same.id: "Priority: unchanged"},
    )
    reasons = {job.id: job.reason for job in (starts, waits, same)}
    placed = apply(session, plan, reasons, now)
    # The waiting jobs' reasons are written in one statement, past the ORM's objects.
    session.refresh(waits)
    session.refresh(same)

    assert (placed.started, placed.preempted) == (1, 1)
    assert starts.state == JobState.STARTING.value
    assert (starts.site_id, starts.placement, starts.nodes) == (site_row.id, [["n0", 2]], 1)
    assert (starts.placed_gpu_type, starts.allocation_id, starts.charge_factor) == (
        "h100", allocation_id, 2.0,
    )  # fmt: skip
    assert starts.reason == f"starting on {site_row.name}"
    session.flush()
    event = session.scalars(select(JobEventRow).where(JobEventRow.job_id == starts.id)).one()
    assert (event.from_state, event.to_state) == ("pending", "starting")
    assert (victim.cancel_requested, victim.preempted_for) == (True, starts.id)
    assert victim.reason == "Preempted: for a higher tier"
    assert not ended.cancel_requested and ended.preempted_for is None
    assert waits.reason == ("Resources: " + "x" * 600)[:500]
    assert same.reason == "Priority: unchanged"
    assert waits.state == same.state == JobState.PENDING.value


def test_apply_leaves_a_job_cancelled_since_the_cycle_read_it(session: Session) -> None:
    """Between a cycle's read and its writes a waiting job may be cancelled (by its owner,
    through the API): it is not started, and its reason is not overwritten."""
    now = datetime.now(UTC)
    site_row = session.scalars(select(SiteRow).order_by(SiteRow.id)).first()
    allocation_id = session.scalars(select(AllocationRow.id)).first()
    assert site_row is not None and allocation_id is not None
    gone = _job(session, JobState.PENDING, "gone", reason="Priority: before")
    left = _job(session, JobState.PENDING, "left", reason="Priority: before")
    reasons = {job.id: job.reason for job in (gone, left)}
    gone.state, gone.reason = JobState.CANCELLED.value, "cancelled by maria"
    left.state, left.reason = JobState.CANCELLED.value, "cancelled by maria"
    session.flush()
    plan = CyclePlan(
        launches=(
            Launch(gone.id, site_row.name, (NodeShare("n0", 2),), "h100", allocation_id, 2.0),
        ),
        waits={left.id: "Resources: none free"},
    )
    placed = apply(session, plan, reasons, now)
    session.refresh(gone)
    session.refresh(left)
    assert placed.started == 0
    assert (gone.state, gone.reason, gone.site_id) == ("cancelled", "cancelled by maria", None)
    assert (left.state, left.reason) == ("cancelled", "cancelled by maria")
