"""The pure core of the harvest: Slurm accounting parsed from real captured output, and the
exactly-once rules (tests/slurm/capture_accounting.py made the files)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fabriek.domain.jobs import JobSpec
from fabriek.domain.slurm_accounting import (
    AccountingFormatError,
    AccountingRecord,
    Merge,
    RecordKey,
    fabriek_job_id,
    merge,
    parse_sacct,
    parse_slurmdb_jobs,
)
from fabriek.engines.base import EngineJob, Placement
from fabriek.engines.slurm_parse import job_tag
from fabriek.engines.slurm_sbatch import job_name

DATA = Path(__file__).parent / "slurm" / "data"


def apply_merge(
    ledger: Mapping[RecordKey, AccountingRecord], merged: Merge
) -> dict[RecordKey, AccountingRecord]:
    """The ledger after a merge, as the harvest keeps it."""
    out = dict(ledger)
    for record in (*merged.added, *merged.changed):
        out[record.key] = record
    return out


def _sacct() -> list[AccountingRecord]:
    return parse_sacct((DATA / "sacct_22.05_allocations.txt").read_text())


def _rest() -> list[AccountingRecord]:
    return parse_slurmdb_jobs(json.loads((DATA / "slurmdb_22.05_jobs.json").read_text()))


@pytest.mark.parametrize("read", [_sacct, _rest], ids=["sacct", "slurmrestd"])
def test_every_run_is_one_record_keyed_by_cluster_id_and_submit_time(read: object) -> None:
    records = read()  # type: ignore[operator]
    # 8 sbatch calls: an array of 3 is 3 records, a heterogeneous job 2, a requeued job 2.
    assert len(records) == 12
    assert len({r.key for r in records}) == 12
    assert {r.cluster for r in records} == {"capture"}
    requeued = sorted((r for r in records if r.job_id == 5), key=lambda r: r.submitted_at)
    assert [r.state for r in requeued] == ["REQUEUED", "COMPLETED"]
    assert requeued[0].submitted_at < requeued[1].submitted_at
    assert all(r.ended for r in requeued)
    assert requeued[0].fabriek_state == "cancelled"


@pytest.mark.parametrize("read", [_sacct, _rest], ids=["sacct", "slurmrestd"])
def test_gpus_are_the_allocated_tres_of_all_nodes(read: object) -> None:
    by_id = {r.job_id: r for r in read() if r.job_id != 5}  # type: ignore[operator]
    two_nodes = by_id[2]
    assert (two_nodes.nodes, two_nodes.gpus) == (2, 4)
    assert two_nodes.gpu_hours.value == pytest.approx(4 * two_nodes.elapsed_s / 3600)
    assert by_id[6].gpus == 4 and by_id[6].fabriek_state == "cancelled"
    assert by_id[4].fabriek_state == "failed" and by_id[4].gpus == 2
    assert by_id[1].user == "fab-hv-ann" and by_id[1].account == "hvclimate"
    assert by_id[1].started_at is not None and by_id[1].started_at.tzinfo is UTC
    # No energy plugin on the capture machine: no measured energy, not zero.
    assert all(r.energy_j is None for r in by_id.values())


@pytest.mark.parametrize("read", [_sacct, _rest], ids=["sacct", "slurmrestd"])
def test_array_tasks_and_het_components_are_their_own_records(read: object) -> None:
    records = read()  # type: ignore[operator]
    tasks = sorted((r.array_task_id, r.job_id) for r in records if r.array_job_id == 3)
    assert tasks == [(0, 10), (1, 11), (2, 3)]
    het = sorted((r.het_offset, r.job_id, r.gpus) for r in records if r.het_job_id == 8)
    assert het == [(0, 8, 1), (1, 9, 2)]


def test_both_sources_read_the_same_runs() -> None:
    # Captured a few seconds apart from the same cluster's accounting.
    def shape(r: AccountingRecord) -> tuple[object, ...]:
        return (r.job_id, r.user, r.account, r.state, r.gpus, r.nodes, r.array_task_id)

    assert sorted(map(shape, _sacct())) == sorted(map(shape, _rest()))


def test_steps_are_never_counted() -> None:
    with_steps = (DATA / "sacct_22.05_with_steps.txt").read_text()
    assert ".batch|" in with_steps
    records = parse_sacct(with_steps)
    assert len(records) == 12  # the same runs as with --allocations, steps left out
    assert all(r.user for r in records)  # step lines have no user


def test_typed_gpus_and_energy_and_a_comment_with_the_delimiter() -> None:
    line = (
        "c1|42|42|ann|acct|COMPLETED|2026-01-01T10:00:00|2026-01-01T10:00:00|"
        "2026-01-01T12:00:00|7200|cpu=8,gres/gpu=8,gres/gpu:h100=8,mem=64G,node=2|2|"
        "3600000|train|fabriek:7|extra\nsecond line"
    )
    (record,) = parse_sacct(line)
    assert (record.gpus, record.gpu_type, record.memory_mb) == (8, "h100", 65536)
    assert record.energy is not None and record.energy.value == pytest.approx(1.0)
    assert record.comment == "fabriek:7|extra\nsecond line"
    assert record.gpu_hours.value == pytest.approx(16.0)
    assert fabriek_job_id(record, "fabriek") is None  # not the engines' mark
    assert fabriek_job_id(replace(record, comment="fabriek:7"), "fabriek") == 7


def test_only_typed_gpus_are_summed() -> None:
    line = (
        "c1|1|1|ann|acct|RUNNING|2026-01-01T10:00:00|2026-01-01T10:00:00|Unknown|60|"
        "gres/gpu:a100=2,gres/gpu:h100=4|1||x|"
    )
    (record,) = parse_sacct(line)
    assert (record.gpus, record.gpu_type) == (6, "h100")
    assert not record.ended and record.fabriek_state == "running"


def test_unreadable_accounting_is_an_error_that_says_so() -> None:
    with pytest.raises(AccountingFormatError, match="fields"):
        parse_sacct("capture|1|1|ann\n")
    with pytest.raises(AccountingFormatError, match="no list of jobs"):
        parse_slurmdb_jobs({"errors": []})
    with pytest.raises(AccountingFormatError, match="cannot read"):
        parse_slurmdb_jobs({"jobs": [{"job_id": 1}]})


def test_the_engines_marks_are_recognised_and_nothing_else() -> None:
    spec = JobSpec(name="train llm", command=("true",))
    name = job_name(EngineJob(101, spec, Placement()), "fbk-1a2b3c4d")
    (record,) = [r for r in _sacct() if r.job_id == 7]
    assert fabriek_job_id(replace(record, name=name), "fbk-1a2b3c4d") == 101
    assert fabriek_job_id(replace(record, comment=job_tag("fbk-1a2b3c4d", 55)), "fbk-1a2b3c4d")
    assert fabriek_job_id(record, "fabriek") == 101  # the capture's own name
    assert fabriek_job_id(record, "fbk-1a2b3c4d") is None
    assert fabriek_job_id(replace(record, name="my-101-job"), "fabriek") is None


# -- the exactly-once rules, as properties ---------------------------------------------------

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@st.composite
def records(draw: st.DrawFn) -> AccountingRecord:
    job_id = draw(st.integers(1, 40))
    submitted = T0 + timedelta(minutes=draw(st.integers(0, 3)))  # requeues: same id again
    elapsed = draw(st.integers(0, 10 * 3600))
    state = draw(st.sampled_from(["COMPLETED", "FAILED", "CANCELLED", "REQUEUED", "RUNNING"]))
    start = submitted + timedelta(seconds=5)
    return AccountingRecord(
        cluster=draw(st.sampled_from(["a", "b"])),
        job_id=job_id,
        submitted_at=submitted,
        user="ann",
        account="climate",
        state=state,
        started_at=start,
        ended_at=None if state == "RUNNING" else start + timedelta(seconds=elapsed),
        elapsed_s=elapsed,
        gpus=draw(st.integers(0, 16)),
        nodes=draw(st.integers(1, 4)),
    )


def _universe(items: list[AccountingRecord]) -> list[AccountingRecord]:
    """One version per key: what the site's accounting holds at one moment."""
    return list({r.key: r for r in items}.values())


@given(
    st.lists(records(), max_size=40).map(_universe),
    st.lists(st.lists(st.integers(0, 39), max_size=40), max_size=6),
)
def test_overlapping_batches_give_the_ledger_of_their_union(
    universe: list[AccountingRecord], picks: list[list[int]]
) -> None:
    batches = [[universe[i] for i in pick if i < len(universe)] for pick in picks]
    ledger: dict = {}
    for batch in batches:
        ledger = apply_merge(ledger, merge(ledger, batch))
    union = [r for batch in batches for r in batch]
    once = apply_merge({}, merge({}, union))
    assert ledger == once
    # Harvesting it all again adds nothing and changes nothing.
    again = merge(ledger, union)
    assert again.added == () and again.changed == ()
    # Only ended runs are in the ledger, each once.
    assert all(r.ended for r in ledger.values())
    assert set(ledger) == {r.key for r in union if r.ended}


@given(records())
def test_gpu_hours_are_allocated_gpus_times_elapsed(record: AccountingRecord) -> None:
    assert record.gpu_hours.value == pytest.approx(record.gpus * record.elapsed_s / 3600)


@given(records(), st.integers(1, 10**9))
def test_late_energy_changes_a_record_never_adds_one(record: AccountingRecord, joules: int) -> None:
    ledger = apply_merge({}, merge({}, [record]))
    late = replace(record, energy_j=joules)
    step = merge(ledger, [late])
    assert step.added == ()
    assert step.changed == ((late,) if record.ended else ())
    # The same record twice in one batch (two overlapping reads): the complete one wins.
    both = merge({}, [record, late])
    assert len(both.added) == (1 if record.ended else 0)
    assert all(r.energy_j == joules for r in both.added)
