"""Property tests of the AI Act compute rules: estimates, what counts, lineage and the lines
a job crosses; and the shipped rules file's schema check."""

from __future__ import annotations

import copy
import itertools
import tomllib
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from fabriek.domain.ai_act.compute_lines import BaseCompute, ComputeLevels, crossings, lines_for
from fabriek.domain.ai_act.documentation import to_yaml
from fabriek.domain.ai_act.estimates import (
    Estimate,
    RunCompute,
    architecture_estimate,
    hardware_estimate,
)
from fabriek.domain.ai_act.figures import significant
from fabriek.domain.ai_act.ledger import JobRecord, RunSpan, own_compute, training_time
from fabriek.domain.ai_act.lineage import LineageCycle, declared, find_cycle, lineage_sum
from fabriek.domain.ai_act.model_rules import parse_ai_act_rules
from fabriek.domain.ai_act.models import split_ref
from fabriek.domain.ai_act.vocabulary import JobPurpose, Measure, Method, ModelRole
from fabriek.domain.gpus import GPU_TYPES
from fabriek.domain.units import Flop, GpuSeconds
from fabriek.services.ai_act.rules import ai_act_rules

RULES = ai_act_rules()
EST = RULES.estimation
NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
TYPES = st.sampled_from([*GPU_TYPES, None])
SECONDS = st.floats(min_value=0, max_value=1e10, allow_nan=False)
MFU = st.one_of(st.none(), st.floats(min_value=0.01, max_value=1.0))
RUNS = st.lists(st.builds(RunCompute, TYPES, SECONDS.map(GpuSeconds), MFU), min_size=0, max_size=8)
FLOPS = st.floats(min_value=0, max_value=1e27, allow_nan=False)
LEVELS = st.builds(
    lambda t, m, c: ComputeLevels(Flop(t), Flop(t + m), Flop(t + m + c)), FLOPS, FLOPS, FLOPS
)


def raw() -> dict[str, Any]:
    text = resources.files("fabriek.config").joinpath("ai_act.toml").read_text()
    return tomllib.loads(text)


# --- the rules file ---------------------------------------------------------------------------


def test_the_shipped_rules_cite_a_source_for_every_entry() -> None:
    assert RULES.version and RULES.regulation
    assert {t.code for t in RULES.thresholds} >= {"gpai-indicative", "systemic-risk"}
    for t in RULES.thresholds:
        assert t.source and t.meaning
    for rule in RULES.purposes.values():
        assert rule.source
    for field in RULES.documentation:
        assert field.source and field.audiences
    systemic = RULES.systemic_line()
    assert systemic is not None and systemic.flop == Flop(1e25)
    assert systemic.notify_within_days == 14
    assert [t.flop.value for t in RULES.thresholds] == sorted(
        t.flop.value for t in RULES.thresholds
    )
    by_code = {t.code: t.flop.value for t in RULES.thresholds}
    assert by_code["systemic-risk-50"] == pytest.approx(5e24)
    assert by_code["systemic-risk-80"] == pytest.approx(8e24)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["thresholds"][0].pop("source"), "missing 'source'"),
        (lambda d: d["thresholds"][0].update(measure="weekly"), "is not one of"),
        (lambda d: d["thresholds"][1].update(of="nowhere"), "names no threshold"),
        (lambda d: d["purposes"].pop(), "no rule for"),
        (lambda d: d["estimation"].update(default_utilisation=2.0), "between"),
        (lambda d: d["documentation"][0].update(fill="guesswork"), "is 'provider' or one of"),
        (lambda d: d["documentation"][0].update(audiences=["the press"]), "is not one of"),
        (lambda d: d["dates"][0].update(date="soon"), "must be a TOML date"),
        (lambda d: d["purposes"][0].update(cumulative=False), "also cumulative"),
    ],
)
def test_a_broken_rules_file_is_refused_naming_the_entry(change: Any, message: str) -> None:
    data = copy.deepcopy(raw())
    change(data)
    with pytest.raises(ValueError, match=message):
        parse_ai_act_rules(data)


# --- estimates --------------------------------------------------------------------------------


@given(RUNS)
def test_hardware_estimate_is_the_sum_of_its_runs_and_inside_its_band(
    runs: list[RunCompute],
) -> None:
    whole = hardware_estimate(runs, EST)
    parts = [hardware_estimate([r], EST) for r in runs]
    assert whole.flop.value == pytest.approx(sum(p.flop.value for p in parts), rel=1e-9)
    assert whole.low.value <= whole.flop.value * (1 + 1e-12)
    assert whole.flop.value <= whole.high.value * (1 + 1e-12)
    assert whole.method is Method.HARDWARE


@given(TYPES, SECONDS, st.floats(min_value=0.01, max_value=1.0))
def test_hardware_estimate_is_gpu_seconds_times_peak_times_utilisation(
    gpu_type: str | None, seconds: float, mfu: float
) -> None:
    found = hardware_estimate([RunCompute(gpu_type, GpuSeconds(seconds), mfu)], EST)
    peak = (
        GPU_TYPES[gpu_type].peak_bf16_tflops
        if gpu_type
        else max(g.peak_bf16_tflops for g in GPU_TYPES.values())
    )
    assert found.flop.value == pytest.approx(seconds * peak * 1e12 * mfu, rel=1e-12)


@given(TYPES, st.floats(min_value=1, max_value=1e10))
def test_a_job_without_a_measured_mfu_is_counted_at_the_default_and_banded(
    gpu_type: str | None, seconds: float
) -> None:
    found = hardware_estimate([RunCompute(gpu_type, GpuSeconds(seconds))], EST)
    assert found.low.value / found.flop.value == pytest.approx(
        EST.utilisation_low / EST.default_utilisation
    )
    assert found.high.value / found.flop.value == pytest.approx(
        EST.utilisation_high / EST.default_utilisation
    )
    assert any("reported none" in a for a in found.assumptions)


def test_the_guidelines_worked_examples_by_formula() -> None:
    """The formulas alone; test_api_models reproduces both through the ledger from jobs."""
    hardware = hardware_estimate([RunCompute("h100", GpuSeconds(370_000 * 3600), 0.5)], EST)
    assert hardware.flop.value == pytest.approx(6.5e23, rel=0.02)
    architecture = architecture_estimate(3.8e9, 3.3e12, EST, "declared")
    assert architecture.flop.value == pytest.approx(7.5e22, rel=0.01)
    assert significant(architecture.flop.value) == "7.5e22"


@given(st.floats(min_value=1e-30, max_value=1e30))
def test_two_significant_figures_round_trip_within_half_a_unit(value: float) -> None:
    text = significant(value)
    assert float(text) == pytest.approx(value, rel=0.051)
    assert len(text.split("e")[0].replace(".", "")) == 2


@given(st.floats(min_value=1, max_value=1e14), st.floats(min_value=0, max_value=1e16))
def test_architecture_estimate_is_six_n_d(parameters: float, tokens: float) -> None:
    found = architecture_estimate(parameters, tokens, EST, "t")
    assert found.flop.value == pytest.approx(6 * parameters * tokens, rel=1e-12)
    assert found.low.value <= found.flop.value <= found.high.value


# --- what counts ------------------------------------------------------------------------------

PURPOSES = st.sampled_from(list(JobPurpose))


@st.composite
def jobs(draw: st.DrawFn) -> list[JobRecord]:
    out = []
    for i in range(draw(st.integers(0, 6))):
        start = NOW + timedelta(seconds=draw(st.integers(0, 10**6)))
        spans = tuple(
            RunSpan(draw(TYPES), draw(st.integers(0, 512)), start,
                    start + timedelta(seconds=draw(st.integers(0, 10**6))))
            for _ in range(draw(st.integers(0, 3)))
        )  # fmt: skip
        out.append(JobRecord(i, f"j{i}", "completed", draw(PURPOSES), spans, draw(MFU)))
    return out


@given(jobs())
def test_training_is_within_modification_and_excluded_is_the_rest(records: list[JobRecord]) -> None:
    own = own_compute(records, RULES)
    total = sum(hardware_estimate([RunCompute(r.gpu_type, r.gpu_seconds, j.mfu) for r in j.runs],
                                  EST).flop.value for j in records)  # fmt: skip
    assert own.training.flop.value <= own.modification.flop.value * (1 + 1e-9) + 1e-6
    assert own.modification.flop.value + own.excluded.flop.value == pytest.approx(total, rel=1e-9)
    for job in records:
        rule = RULES.purpose(job.purpose)
        if not rule.cumulative:
            # A job whose purpose does not count adds nothing to what counts.
            without = own_compute([j for j in records if j is not job], RULES)
            assert without.modification.flop.value == pytest.approx(
                own.modification.flop.value, rel=1e-9, abs=1e-6
            )


def test_the_purposes_count_as_the_guidelines_say() -> None:
    counts = {p: (r.training, r.cumulative) for p, r in RULES.purposes.items()}
    assert counts[JobPurpose.PRE_TRAINING] == (True, True)
    assert counts[JobPurpose.FINE_TUNING] == (True, True)
    assert counts[JobPurpose.SYNTHETIC_DATA_PRIVATE] == (False, True)
    for excluded in (JobPurpose.SYNTHETIC_DATA_PUBLIC, JobPurpose.EVALUATION,
                     JobPurpose.EXPLORATORY_RESEARCH, JobPurpose.REWARD_MODEL):  # fmt: skip
        assert counts[excluded] == (False, False)


@given(jobs())
def test_wall_clock_days_never_exceed_the_span_and_gpu_days_add_up(
    records: list[JobRecord],
) -> None:
    found = training_time(records)
    runs = [r for j in records for r in j.runs]
    assert found.gpu_days == pytest.approx(sum(r.gpu_seconds.value for r in runs) / 86400)
    if runs:
        assert found.first_start is not None and found.last_end is not None
        span = (found.last_end - found.first_start).total_seconds() / 86400
        assert found.wall_clock_days <= span + 1e-9
        assert (
            found.wall_clock_days
            >= max((r.ended - r.started).total_seconds() for r in runs) / 86400 - 1e-9
        )


# --- lineage ----------------------------------------------------------------------------------

GRAPHS = st.dictionaries(
    st.integers(0, 12), st.lists(st.integers(0, 12), max_size=3, unique=True), max_size=12
)


@given(GRAPHS, st.integers(0, 12))
def test_a_cycle_is_found_exactly_when_a_node_reaches_itself(
    graph: dict[int, list[int]], start: int
) -> None:
    cycle = find_cycle(graph, start)
    reachable = _reachable(graph, start)
    assert (cycle is not None) == (start in reachable)
    if cycle is not None:
        assert cycle[0] == cycle[-1] == start
        for a, b in itertools.pairwise(cycle):
            assert b in graph[a]
    # The lineage of `start` is what it reaches, or a cycle on the way is refused.
    if any(find_cycle(graph, n) is not None for n in {start, *reachable}):
        with pytest.raises(LineageCycle):
            lineage_sum([start], graph, {})  # type: ignore[arg-type]
    else:
        assert set(lineage_sum([start], graph, {}).members) == {start, *reachable}  # type: ignore[arg-type]


def _reachable(graph: dict[int, list[int]], start: int) -> set[int]:
    """Every node `start` reaches through one or more links."""
    reachable: set[int] = set()
    frontier = list(graph.get(start, []))
    while frontier:
        node = frontier.pop()
        if node not in reachable:
            reachable.add(node)
            frontier.extend(graph.get(node, []))
    return reachable


@given(GRAPHS, st.integers(0, 12), st.dictionaries(st.integers(0, 12), FLOPS))
def test_lineage_sums_each_ancestor_once(
    graph: dict[int, list[int]], start: int, own: dict[int, float]
) -> None:
    assume(find_cycle(graph, start) is None)
    for node in list(graph) + [b for bs in graph.values() for b in bs]:
        if find_cycle(graph, node) is not None:
            assume(False)
    nodes = {
        n: declared(str(n), own.get(n, 1.0), False)
        for n in {start, *graph, *(b for bs in graph.values() for b in bs)}
    }
    summed = lineage_sum([start], graph, nodes)  # type: ignore[arg-type]
    members = {start, *_reachable(graph, start)}
    assert set(summed.members) == members
    assert summed.estimate.flop.value == pytest.approx(
        sum(own.get(n, 1.0) for n in members), rel=1e-9
    )
    assert summed.known


def test_an_unknown_external_base_makes_the_sum_incomplete() -> None:
    nodes = {1: declared("mine", 1e22, False), "external:x": declared("x", None, True)}
    summed = lineage_sum([1], {1: ["external:x"]}, nodes)  # type: ignore[dict-item]
    assert not summed.known and summed.systemic_risk
    assert summed.estimate.flop.value == pytest.approx(1e22)


# --- the lines a job crosses ------------------------------------------------------------------


@given(LEVELS, FLOPS, st.sampled_from(list(JobPurpose)))
def test_crossings_are_exactly_the_lines_between_before_and_after(
    before: ComputeLevels, added: float, purpose: JobPurpose
) -> None:
    lines = lines_for(RULES, ModelRole.PROVIDER, None)
    after = before.plus(RULES.purpose(purpose), Flop(added))
    found = crossings(before, after, lines, NOW)
    expected = {
        line.code
        for line in lines
        if before.of(line.measure).value <= line.flop.value < after.of(line.measure).value
    }
    assert {c.line.code for c in found} == expected
    assert [c.line.flop.value for c in found] == sorted(c.line.flop.value for c in found)
    for c in found:
        if c.line.code == "systemic-risk":
            assert c.notify_by == (NOW + timedelta(days=14)).date()
        else:
            assert c.notify_by is None


@given(LEVELS, st.lists(FLOPS, min_size=1, max_size=6))
def test_a_line_is_crossed_once_however_the_compute_is_split(
    start: ComputeLevels, steps: list[float]
) -> None:
    """Adding compute job by job crosses each line at most once, and exactly the lines that
    adding it all at once would."""
    lines = lines_for(RULES, ModelRole.PROVIDER, None)
    rule = RULES.purpose(JobPurpose.PRE_TRAINING)
    level, seen = start, []
    for step in steps:
        nxt = level.plus(rule, Flop(step))
        seen += [c.line.code for c in crossings(level, nxt, lines, NOW)]
        level = nxt
    at_once = crossings(start, level, lines, NOW)
    assert sorted(seen) == sorted(c.line.code for c in at_once)
    assert len(seen) == len(set(seen))


def test_each_line_fires_at_the_job_that_crosses_it() -> None:
    """Table: the line, compute before, the job's FLOP; the job just past the line warns."""
    lines = lines_for(RULES, ModelRole.DOWNSTREAM_MODIFIER, BaseCompute(Flop(3e23)))
    by_code = {line.code: line for line in lines}
    assert by_code["modifier-one-third"].flop.value == pytest.approx(1e23)
    assert by_code["modifier-one-third"].measure is Measure.MODIFICATION
    rule = RULES.purpose(JobPurpose.FINE_TUNING)
    cases = [
        ("gpai-indicative", 0.9e23, 0.2e23),
        ("systemic-risk-50", 4.9e24, 0.2e24),
        ("systemic-risk-80", 7.9e24, 0.2e24),
        ("systemic-risk", 9.95e24, 0.1e24),
    ]
    for code, before_flop, job in cases:
        before = ComputeLevels(Flop(0), Flop(0), Flop(before_flop))
        found = {c.line.code for c in crossings(before, before.plus(rule, Flop(job)), lines, NOW)}
        assert code in found, (code, found)
    # The modifier line compares the modification alone.
    before = ComputeLevels(Flop(0.9e23), Flop(0.9e23), Flop(3.9e23))
    found = {c.line.code for c in crossings(before, before.plus(rule, Flop(0.2e23)), lines, NOW)}
    assert found == {"modifier-one-third"}


@pytest.mark.parametrize(
    ("base", "expected"),
    [(BaseCompute(None), 1e23 / 3), (BaseCompute(None, True), 1e25 / 3),
     (BaseCompute(Flop(6e24)), 2e24)],
)  # fmt: skip
def test_the_modifier_line_falls_back_when_the_base_compute_is_unknown(
    base: BaseCompute, expected: float
) -> None:
    line = next(x for x in lines_for(RULES, ModelRole.DOWNSTREAM_MODIFIER, base)
                if x.code == "modifier-one-third")  # fmt: skip
    assert line.flop.value == pytest.approx(expected)
    assert all(x.code != "modifier-one-third" for x in lines_for(RULES, ModelRole.PROVIDER, base))


def test_estimates_add_only_with_the_same_method() -> None:
    hw = Estimate.none(Method.HARDWARE)
    arch = Estimate.none(Method.ARCHITECTURE)
    with pytest.raises(TypeError):
        _ = hw + arch


@given(st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True),
       st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,10}", fullmatch=True))  # fmt: skip
def test_model_refs_split_into_name_and_version(name: str, version: str) -> None:
    assert split_ref(f"{name}:{version}") == (name, version)


@given(st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30)),
    lambda inner: st.dictionaries(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), inner, max_size=4)
    | st.lists(st.one_of(st.text(max_size=20), st.integers()), max_size=4),
    max_leaves=10,
).filter(lambda v: isinstance(v, dict)))  # fmt: skip
def test_card_front_matter_is_yaml_that_reads_back(value: dict[str, Any]) -> None:
    yaml = pytest.importorskip("yaml")
    assert yaml.safe_load(to_yaml(value)) == (value or None)
