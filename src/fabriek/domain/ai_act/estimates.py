"""Estimates of a model version's compute, by hardware (GPU time × peak × utilisation)
or by architecture (6 × parameters × tokens), each with its assumptions and uncertainty
band (the Commission's guidelines, Annex A)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fabriek.domain.ai_act.model_rules import Estimation
from fabriek.domain.ai_act.vocabulary import Method
from fabriek.domain.gpus import GPU_TYPES
from fabriek.domain.units import Flop, FlopPerSecond, GpuSeconds


@dataclass(frozen=True)
class Estimate:
    """A compute estimate with its method, assumptions and uncertainty band."""

    method: Method
    flop: Flop
    low: Flop
    high: Flop
    assumptions: tuple[str, ...] = ()

    def __add__(self, other: Estimate) -> Estimate:
        if other.method is not self.method:
            return NotImplemented
        return Estimate(
            self.method,
            self.flop + other.flop,
            self.low + other.low,
            self.high + other.high,
            tuple(dict.fromkeys((*self.assumptions, *other.assumptions))),
        )

    @classmethod
    def none(cls, method: Method) -> Estimate:
        return cls(method, Flop(0.0), Flop(0.0), Flop(0.0))


@dataclass(frozen=True)
class RunCompute:
    """GPU time on one GPU type, at a measured model FLOP utilisation or (None) the
    default: what a hardware-based estimate multiplies out."""

    gpu_type: str | None
    gpu_seconds: GpuSeconds
    utilisation: float | None = None


def peak_of(gpu_type: str | None) -> tuple[FlopPerSecond, str]:
    """Dense BF16 peak of a GPU type, with its source. A job that may run on any type is
    counted at the fastest type there is: a projection should not understate."""
    known = GPU_TYPES.get(gpu_type or "")
    if known is not None:
        return (
            known.peak_bf16,
            f"{known.name}: {known.peak_bf16_tflops:g} TFLOP/s dense BF16 ({known.source})",
        )
    fastest = max(GPU_TYPES.values(), key=lambda g: g.peak_bf16_tflops)
    return (
        fastest.peak_bf16,
        f"GPU type not fixed: counted at the fastest type, {fastest.name}, {fastest.peak_bf16_tflops:g} TFLOP/s",
    )


def hardware_estimate(runs: Iterable[RunCompute], estimation: Estimation) -> Estimate:
    """C = Σ GPU-seconds × peak FLOP/s of the GPU type × utilisation (Guidelines, Annex A).
    Measured utilisation is banded by its own uncertainty, the default by its low/high."""
    flop = low = high = 0.0
    assumptions: list[str] = []
    defaulted = measured = 0.0
    for run in runs:
        peak, why = peak_of(run.gpu_type)
        at_peak = run.gpu_seconds.value * peak.value
        if at_peak <= 0:
            continue
        assumptions.append(why)
        if run.utilisation is None:
            u = estimation.default_utilisation
            flop += at_peak * u
            low += at_peak * estimation.utilisation_low
            high += at_peak * estimation.utilisation_high
            defaulted += run.gpu_seconds.value
        else:
            u = run.utilisation
            flop += at_peak * u
            low += at_peak * u * (1 - estimation.measured_uncertainty)
            high += at_peak * u * (1 + estimation.measured_uncertainty)
            measured += run.gpu_seconds.value
    if measured:
        assumptions.append(
            f"utilisation as measured by the jobs (MFU) for {measured / 3600:,.1f} GPU-h, "
            f"±{estimation.measured_uncertainty:.0%} ({estimation.measured_source})"
        )
    if defaulted:
        assumptions.append(
            f"utilisation {estimation.default_utilisation:.0%} (band "
            f"{estimation.utilisation_low:.0%}-{estimation.utilisation_high:.0%}) for "
            f"{defaulted / 3600:,.1f} GPU-h whose jobs reported none ({estimation.utilisation_source})"
        )
    return Estimate(
        Method.HARDWARE, Flop(flop), Flop(low), Flop(high), tuple(dict.fromkeys(assumptions))
    )


def architecture_estimate(
    active_parameters: float, tokens: float, estimation: Estimation, tokens_from: str
) -> Estimate:
    """C ≈ 6 × (active) parameters × training tokens (Guidelines, Annex A; dense
    transformers, or the active parameters of a mixture of experts)."""
    flop = estimation.architecture_factor * active_parameters * tokens
    band = estimation.architecture_uncertainty
    return Estimate(
        Method.ARCHITECTURE,
        Flop(flop),
        Flop(flop * (1 - band)),
        Flop(flop * (1 + band)),
        (
            f"{estimation.architecture_factor:g} × {active_parameters:.3g} parameters × "
            f"{tokens:.3g} tokens ({tokens_from})",
            f"±{band:.0%} ({estimation.architecture_source})",
        ),
    )
