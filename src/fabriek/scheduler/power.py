"""A power model of GPU jobs: what a running GPU draws from the grid.

Per GPU type an idle and a full power (watts). A job's GPU draws
`idle + utilisation x (full - idle)`, its IT power; the site draws that times its PUE
from the grid. Without measurements the defaults are stated assumptions, not fitted:

- full power: the type's board power (TDP) from `fabriek.domain.gpus`, 700 W (an
  H100-class figure) for a type the reference data does not know;
- idle power: 10 % of full power (an idle H100 SXM reports about 60-80 W in
  `nvidia-smi`, an idle A100 about 50-60 W);
- utilisation: 0.5 of the span between idle and full, a middle value for shared training
  clusters, whose jobs spend much of their time in input pipelines, communication and
  checkpoints. Set 1 to plan against board power (a hard guarantee for a grid cap);
- PUE: 1.2, the limit new Dutch data centres are held to in their permits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from fabriek.domain import energy
from fabriek.domain.gpus import gpu_type as lookup_gpu_type

DEFAULT_FULL_WATTS = 700.0
# The same assumptions the metering ledger makes (`fabriek.domain.energy`), so that what
# the scheduler plans and what the ledger accounts agree.
DEFAULT_IDLE_SHARE = energy.DEFAULT_IDLE_FRACTION
DEFAULT_UTILISATION = energy.DEFAULT_UTILISATION
DEFAULT_PUE = 1.2


@dataclass(frozen=True, slots=True)
class GpuPower:
    """Idle and full power of one GPU, in watts."""

    idle_w: float
    full_w: float

    def __post_init__(self) -> None:
        if not 0 <= self.idle_w <= self.full_w:
            raise ValueError(
                f"GPU power needs 0 <= idle <= full watts, got idle {self.idle_w} "
                f"and full {self.full_w}"
            )


def default_gpu_power(code: str) -> GpuPower:
    """Idle and full power of a GPU type from the reference data (see the module)."""
    known = lookup_gpu_type(code)
    full = float(known.tdp_w) if known else DEFAULT_FULL_WATTS
    return GpuPower(DEFAULT_IDLE_SHARE * full, full)


@dataclass(frozen=True, slots=True)
class PowerModel:
    """Modelled power of running GPUs; `gpus` overrides the defaults per type code."""

    gpus: Mapping[str, GpuPower] = field(default_factory=dict)
    utilisation: float = DEFAULT_UTILISATION
    pue: float = DEFAULT_PUE

    def __post_init__(self) -> None:
        if not 0 <= self.utilisation <= 1:
            raise ValueError(f"utilisation must be between 0 and 1, got {self.utilisation}")
        if not self.pue >= 1:
            raise ValueError(f"PUE must be at least 1, got {self.pue}")

    def gpu_power(self, code: str) -> GpuPower:
        """Idle and full watts of type `code` (an override, else the default)."""
        found = self.gpus.get(code.strip().lower())
        return found if found is not None else default_gpu_power(code)

    def it_watts(self, code: str) -> float:
        """IT power of one busy GPU of type `code`: idle + utilisation x (full - idle)."""
        p = self.gpu_power(code)
        return p.idle_w + self.utilisation * (p.full_w - p.idle_w)

    def grid_watts(self, code: str) -> float:
        """What one busy GPU of type `code` draws from the grid: IT power x PUE."""
        return self.it_watts(code) * self.pue
