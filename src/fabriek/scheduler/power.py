"""The scheduler's view of the power model: what a running GPU draws from the grid.

The model is the metering ledger's (`domain.energy.PowerModel`, one per GPU type: an idle
and a full power in watts), so that what the scheduler plans and what the ledger accounts
agree; this module adds the one utilisation and PUE the scheduler plans with. A job's GPU draws
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

# The metering ledger's model and assumptions (`fabriek.domain.energy`), so that what the
# scheduler plans and what the ledger accounts agree: one power model, not two.
DEFAULT_FULL_WATTS = energy.UNKNOWN_GPU_FULL_W
DEFAULT_UTILISATION = energy.DEFAULT_UTILISATION
DEFAULT_PUE = 1.2


def default_gpu_power(code: str) -> energy.PowerModel:
    """Idle and full power of a GPU type from the reference data (see the module)."""
    return energy.gpu_power_model(code, unknown_full_w=DEFAULT_FULL_WATTS)


@dataclass(frozen=True, slots=True)
class PowerModel:
    """Modelled power of running GPUs: the ledger's model of each GPU type (idle to full
    watts, `domain.energy.PowerModel`) at one utilisation and PUE; `gpus` overrides the
    defaults per type code."""

    gpus: Mapping[str, energy.PowerModel] = field(default_factory=dict)
    utilisation: float = DEFAULT_UTILISATION
    pue: float = DEFAULT_PUE

    def __post_init__(self) -> None:
        if not 0 <= self.utilisation <= 1:
            raise ValueError(f"utilisation must be between 0 and 1, got {self.utilisation}")
        if not self.pue >= 1:
            raise ValueError(f"PUE must be at least 1, got {self.pue}")

    def gpu_power(self, code: str) -> energy.PowerModel:
        """Idle and full watts of type `code` (an override, else the default)."""
        found = self.gpus.get(code.strip().lower())
        return found if found is not None else default_gpu_power(code)

    def it_watts(self, code: str) -> float:
        """IT power of one busy GPU of type `code`: idle + utilisation x (full - idle)."""
        return self.gpu_power(code).power_w(self.utilisation)

    def grid_watts(self, code: str) -> float:
        """What one busy GPU of type `code` draws from the grid: IT power x PUE."""
        return self.it_watts(code) * self.pue
