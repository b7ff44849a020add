"""The compute and energy ledger of a model version, built from the job runs linked to it.

Pure: the service reads the runs (from the charges ledger and running jobs), the jobs'
reports and energy records, and the lineage, and hands them here as plain values; this
module sums them into the three compute measures (see
`fabriek.domain.ai_act.compute_lines`), the training time, the hardware, the energy with its
measurement boundary, and where each line stands.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, Field

from fabriek.domain.ai_act.compute_lines import BaseCompute, ComputeLevels, Line
from fabriek.domain.ai_act.estimates import (
    Estimate,
    RunCompute,
    architecture_estimate,
    hardware_estimate,
)
from fabriek.domain.ai_act.figures import significant
from fabriek.domain.ai_act.lineage import LineageNode, LineageSum
from fabriek.domain.ai_act.model_rules import AiActRules
from fabriek.domain.ai_act.models import EstimateOut
from fabriek.domain.ai_act.vocabulary import JobPurpose, Measure, Method, ModelRole
from fabriek.domain.gpus import GPU_TYPES
from fabriek.domain.units import GpuSeconds

SECONDS_PER_DAY = 86_400.0

# --- inputs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSpan:
    """One run of a job: GPUs of one type held from `started` to `ended`."""

    gpu_type: str | None
    gpus: int
    started: datetime
    ended: datetime

    @property
    def gpu_seconds(self) -> GpuSeconds:
        return GpuSeconds(self.gpus * max(0.0, (self.ended - self.started).total_seconds()))


@dataclass(frozen=True)
class JobRecord:
    """A job linked to a model version, with everything the ledger reads of it."""

    job_id: int
    name: str
    state: str
    purpose: JobPurpose
    runs: tuple[RunSpan, ...] = ()
    mfu: float | None = None
    tokens: int | None = None
    it_kwh: float = 0.0
    facility_kwh: float = 0.0
    measured_kwh: float = 0.0
    energy_sources: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    datasets_named: bool = False
    site: str | None = None  # where it ran, with the site's jurisdiction


# --- what the API shows -------------------------------------------------------------------


class LedgerJob(BaseModel):
    job_id: int
    name: str
    state: str
    purpose: JobPurpose
    counts_as_training: bool
    counts_as_cumulative: bool
    gpu_type: str | None
    gpu_hours: float
    wall_clock_hours: float
    mfu: float | None = Field(description="as the job reported it; None: the default was used")
    tokens: int | None
    flop: float = Field(description="hardware-based estimate of this job's compute")
    it_kwh: float


class PurposeTotal(BaseModel):
    purpose: JobPurpose
    counts_as_training: bool
    counts_as_cumulative: bool
    jobs: int
    gpu_hours: float
    flop: float
    source: str


class LineageEntry(BaseModel):
    model: str
    external: bool
    flop: float | None = Field(description="its own compute; None: unknown")
    systemic_risk: bool


class LineStatus(BaseModel):
    code: str
    label: str
    line_flop: float
    measure: Measure
    value_flop: float
    fraction: float = Field(description="value / line")
    exceeded: bool
    meaning: str
    source: str


class TrainingTime(BaseModel):
    wall_clock_days: float = Field(description="days with at least one counted run going")
    gpu_days: float = Field(description="GPU-seconds of counted runs / 86,400")
    first_start: datetime | None
    last_end: datetime | None


class HardwareUse(BaseModel):
    gpu_type: str
    name: str
    gpu_hours: float
    largest_run_gpus: int


class EnergyOut(BaseModel):
    it_mwh: float = Field(description="IT energy of the counted runs: GPUs and CPUs, MWh")
    facility_mwh: float = Field(description="IT energy × the site's declared PUE, MWh")
    measured_share: float = Field(description="share of IT energy from GPU energy counters")
    boundary: str
    method: str
    text: str
    sources: list[str]


class InferenceEnergyOut(BaseModel):
    """Serving the version behind endpoints, apart from its training: the energy of the
    replicas' jobs that served it, and per 1,000 tokens where its tokens are known."""

    it_mwh: float
    facility_mwh: float
    replica_jobs: int
    tokens: int = Field(description="tokens of endpoints that served only this version")
    kwh_per_1k_tokens: float | None
    text: str


class ThresholdEvent(BaseModel):
    line: str
    job_id: int | None
    at: datetime
    before_flop: float
    after_flop: float
    acknowledged_by: str | None
    notify_commission_by: datetime | None = None


class Ledger(BaseModel):
    """A model version's compute and energy ledger."""

    model: str = Field(description="NAME:VERSION")
    project: str
    role: ModelRole
    rules_version: str
    jobs: list[LedgerJob]
    by_purpose: list[PurposeTotal]
    training: EstimateOut = Field(description="this version's jobs that update parameters")
    modification: EstimateOut = Field(description="this version's jobs that count at all")
    cumulative: EstimateOut = Field(description="modification plus the whole lineage")
    cumulative_complete: bool = Field(description="false: a base model's compute is unknown")
    architecture: EstimateOut | None = Field(description="6 × parameters × tokens, if known")
    excluded_flop: float = Field(description="compute of jobs whose purpose does not count")
    lineage: list[LineageEntry]
    lines: list[LineStatus]
    events: list[ThresholdEvent]
    training_time: TrainingTime
    hardware: list[HardwareUse]
    energy: EnergyOut
    datasets: list[str] | None = Field(
        description="the datasets the counted jobs read; None: no job named any"
    )
    sites: list[str] = Field(description="where the counted jobs ran, with jurisdiction")
    last_mfu: float | None = Field(description="the newest MFU a job of this version reported")
    systemic_risk: bool = Field(
        description="cumulative compute past the systemic-risk line, or a job projected past "
        "it was acknowledged"
    )
    inference: InferenceEnergyOut | None = Field(
        default=None, description="serving it behind endpoints; not counted as training"
    )


# --- building it --------------------------------------------------------------------------


@dataclass(frozen=True)
class OwnCompute:
    """A version's own compute, by what counts."""

    training: Estimate
    modification: Estimate
    excluded: Estimate
    per_job: Mapping[int, Estimate] = field(default_factory=dict)


def job_runs(job: JobRecord) -> list[RunCompute]:
    return [RunCompute(r.gpu_type, r.gpu_seconds, job.mfu) for r in job.runs]


def own_compute(jobs: Iterable[JobRecord], rules: AiActRules) -> OwnCompute:
    """Hardware-based estimates of a version's own jobs, split by the purpose rules."""
    training = modification = excluded = Estimate.none(Method.HARDWARE)
    per_job: dict[int, Estimate] = {}
    for job in jobs:
        rule = rules.purpose(job.purpose)
        estimate = hardware_estimate(job_runs(job), rules.estimation)
        per_job[job.job_id] = estimate
        if rule.training:
            training = training + estimate
        if rule.cumulative:
            modification = modification + estimate
        else:
            excluded = excluded + estimate
    return OwnCompute(training, modification, excluded, per_job)


def _union_seconds(spans: Iterable[tuple[datetime, datetime]]) -> float:
    total = 0.0
    current: tuple[datetime, datetime] | None = None
    for start, end in sorted(spans):
        if current is None or start > current[1]:
            if current is not None:
                total += (current[1] - current[0]).total_seconds()
            current = (start, end)
        elif end > current[1]:
            current = (current[0], end)
    if current is not None:
        total += (current[1] - current[0]).total_seconds()
    return total


def training_time(jobs: Iterable[JobRecord]) -> TrainingTime:
    """Wall-clock days (the union of the runs' intervals) and GPU-days of the runs."""
    runs = [r for j in jobs for r in j.runs]
    return TrainingTime(
        wall_clock_days=_union_seconds((r.started, r.ended) for r in runs) / SECONDS_PER_DAY,
        gpu_days=sum(r.gpu_seconds.value for r in runs) / SECONDS_PER_DAY,
        first_start=min((r.started for r in runs), default=None),
        last_end=max((r.ended for r in runs), default=None),
    )


BOUNDARY = (
    "IT equipment of the nodes that ran the jobs: GPUs (their NVML energy counters where "
    "the engine read them, else the site's power model of the GPU type at the job's "
    "utilisation) and CPUs (power model); facility energy adds the site's overhead by its "
    "declared PUE. Storage and network outside the nodes are not included."
)


def energy_of(jobs: Sequence[JobRecord], figures: int) -> EnergyOut:
    """The runs' energy from the energy ledger, in MWh, with the boundary and method."""
    it = sum(j.it_kwh for j in jobs)
    facility = sum(j.facility_kwh for j in jobs)
    measured = sum(j.measured_kwh for j in jobs)
    share = measured / it if it > 0 else 0.0
    method = (
        f"sum of Fabriek's hourly energy records of the jobs; {share:.0%} of the IT energy "
        "measured by GPU energy counters, the rest modelled"
    )
    text = (
        f"{significant(it / 1000, figures)} MWh IT, {significant(facility / 1000, figures)} MWh "
        f"facility ({method})"
    )
    return EnergyOut(
        it_mwh=it / 1000,
        facility_mwh=facility / 1000,
        measured_share=share,
        boundary=BOUNDARY,
        method=method,
        text=text,
        sources=sorted({s for j in jobs for s in j.energy_sources}),
    )


def hardware_use(jobs: Iterable[JobRecord]) -> list[HardwareUse]:
    seconds: dict[str, float] = defaultdict(float)
    largest: dict[str, int] = defaultdict(int)
    for job in jobs:
        for run in job.runs:
            key = run.gpu_type or "unknown"
            seconds[key] += run.gpu_seconds.value
            largest[key] = max(largest[key], run.gpus)
    return [
        HardwareUse(
            gpu_type=t,
            name=GPU_TYPES[t].name if t in GPU_TYPES else t,
            gpu_hours=seconds[t] / 3600,
            largest_run_gpus=largest[t],
        )
        for t in sorted(seconds)
    ]


def line_status(lines: Iterable[Line], levels: ComputeLevels) -> list[LineStatus]:
    return [
        LineStatus(
            code=line.code, label=line.label, line_flop=line.flop.value, measure=line.measure,
            value_flop=levels.of(line.measure).value,
            fraction=levels.of(line.measure) / line.flop,
            exceeded=levels.of(line.measure).value > line.flop.value,
            meaning=line.meaning, source=line.source,
        )
        for line in lines
    ]  # fmt: skip


@dataclass(frozen=True)
class VersionFacts:
    """What the ledger needs of the version itself."""

    ref: str
    project: str
    role: ModelRole
    active_parameters: float | None
    declared_tokens: int | None


def levels_of(own: OwnCompute, cumulative: LineageSum) -> ComputeLevels:
    return ComputeLevels(own.training.flop, own.modification.flop, cumulative.estimate.flop)


def _architecture(
    facts: VersionFacts, rules: AiActRules, training_jobs: Sequence[JobRecord]
) -> Estimate | None:
    """6 × parameters × tokens: the tokens the training jobs reported, else those declared."""
    if not facts.active_parameters:
        return None
    reported = [j.tokens for j in training_jobs if j.tokens is not None]
    if reported:
        tokens_from = f"tokens reported by {len(reported)} training job(s)"
        return architecture_estimate(
            facts.active_parameters, float(sum(reported)), rules.estimation, tokens_from
        )
    if facts.declared_tokens:
        return architecture_estimate(
            facts.active_parameters, float(facts.declared_tokens), rules.estimation,
            "training tokens declared for the version",
        )  # fmt: skip
    return None


def _ledger_jobs(jobs: Sequence[JobRecord], rules: AiActRules, own: OwnCompute) -> list[LedgerJob]:
    return [
        LedgerJob(
            job_id=j.job_id, name=j.name, state=j.state, purpose=j.purpose,
            counts_as_training=rules.purpose(j.purpose).training,
            counts_as_cumulative=rules.purpose(j.purpose).cumulative,
            gpu_type=j.runs[-1].gpu_type if j.runs else None,
            gpu_hours=sum(r.gpu_seconds.value for r in j.runs) / 3600,
            wall_clock_hours=_union_seconds((r.started, r.ended) for r in j.runs) / 3600,
            mfu=j.mfu, tokens=j.tokens, flop=own.per_job[j.job_id].flop.value,
            it_kwh=j.it_kwh,
        )
        for j in jobs
    ]  # fmt: skip


def _purpose_totals(
    jobs: Sequence[JobRecord], rules: AiActRules, own: OwnCompute
) -> list[PurposeTotal]:
    by_purpose: dict[JobPurpose, list[JobRecord]] = defaultdict(list)
    for job in jobs:
        by_purpose[job.purpose].append(job)
    return [
        PurposeTotal(
            purpose=p, counts_as_training=rules.purpose(p).training,
            counts_as_cumulative=rules.purpose(p).cumulative, jobs=len(js),
            gpu_hours=sum(r.gpu_seconds.value for j in js for r in j.runs) / 3600,
            flop=sum(own.per_job[j.job_id].flop.value for j in js),
            source=rules.purpose(p).source,
        )
        for p, js in sorted(by_purpose.items())
    ]  # fmt: skip


def build_ledger(
    facts: VersionFacts,
    rules: AiActRules,
    jobs: Sequence[JobRecord],
    own: OwnCompute,
    cumulative: LineageSum,
    lineage: Sequence[LineageNode],
    lines: Sequence[Line],
    events: Sequence[ThresholdEvent],
    last_mfu: float | None,
) -> Ledger:
    """The ledger of one version, from its jobs and its lineage's sums."""
    figures = rules.estimation.significant_figures
    counted = [j for j in jobs if rules.purpose(j.purpose).cumulative]
    architecture = _architecture(
        facts, rules, [j for j in jobs if rules.purpose(j.purpose).training]
    )
    levels = levels_of(own, cumulative)
    systemic = rules.systemic_line()
    return Ledger(
        model=facts.ref,
        project=facts.project,
        role=facts.role,
        rules_version=rules.version,
        jobs=_ledger_jobs(jobs, rules, own),
        by_purpose=_purpose_totals(jobs, rules, own),
        training=EstimateOut.of(own.training, figures),
        modification=EstimateOut.of(own.modification, figures),
        cumulative=EstimateOut.of(cumulative.estimate, figures),
        cumulative_complete=cumulative.known,
        architecture=EstimateOut.of(architecture, figures) if architecture else None,
        excluded_flop=own.excluded.flop.value,
        lineage=[
            LineageEntry(model=n.name, external=n.external,
                         flop=n.own.flop.value if n.own else None, systemic_risk=n.systemic_risk)
            for n in lineage
        ],
        lines=line_status(lines, levels),
        events=list(events),
        training_time=training_time(counted),
        hardware=hardware_use(counted),
        energy=energy_of(counted, figures),
        datasets=sorted({d for j in counted for d in j.datasets})
        if any(j.datasets_named for j in counted)
        else None,
        sites=sorted({j.site for j in counted if j.site}),
        last_mfu=last_mfu,
        systemic_risk=systemic is not None
        and (
            levels.of(systemic.measure) > systemic.flop
            # It became known that the line will be met: what Art. 52(1) counts from.
            or any(e.line == systemic.code and e.acknowledged_by for e in events)
        ),
    )  # fmt: skip


def base_compute(base: LineageSum | None) -> BaseCompute | None:
    """What the one-third rule compares with: the bases' summed compute, if all known."""
    if base is None or not base.members:
        return None
    return BaseCompute(base.estimate.flop if base.known else None, base.systemic_risk)
