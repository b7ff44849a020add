"""Quantities with their units, so GPU-hours and kWh never cross a boundary as bare floats.

Each unit is its own type: adding GPU-hours to kWh is a type error, not a silent bug.
Arithmetic keeps the unit; scaling by a plain number keeps the unit; the ratio of two
quantities of one unit is a plain number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self


@dataclass(frozen=True, order=True)
class Quantity:
    """A non-generic base: `value` in the unit named by `symbol`."""

    value: float
    symbol: ClassVar[str] = ""

    def __add__(self, other: Self) -> Self:
        if type(other) is not type(self):
            return NotImplemented
        return type(self)(self.value + other.value)

    def __sub__(self, other: Self) -> Self:
        if type(other) is not type(self):
            return NotImplemented
        return type(self)(self.value - other.value)

    def __mul__(self, factor: float) -> Self:
        return type(self)(self.value * factor)

    __rmul__ = __mul__

    def __truediv__(self, other: Self) -> float:
        if type(other) is not type(self):
            return NotImplemented
        return self.value / other.value

    def __str__(self) -> str:
        return f"{self.value:,.2f} {self.symbol}"

    @classmethod
    def zero(cls) -> Self:
        return cls(0.0)


class GpuHours(Quantity):
    symbol = "GPU-h"


class KilowattHours(Quantity):
    symbol = "kWh"


class KgCO2e(Quantity):
    symbol = "kg CO2e"


class Litres(Quantity):
    symbol = "L"


class Flop(Quantity):
    symbol = "FLOP"

    def __str__(self) -> str:
        return f"{self.value:.3e} {self.symbol}"


class FlopPerSecond(Quantity):
    """A rate of floating-point operations: a GPU's peak, or what a job achieved."""

    symbol = "FLOP/s"

    def __str__(self) -> str:
        return f"{self.value:.3e} {self.symbol}"


class GpuSeconds(Quantity):
    """GPUs held × seconds: what compute estimates multiply by a GPU's FLOP/s."""

    symbol = "GPU-s"


def gpu_hours(gpus: int, seconds: float) -> GpuHours:
    """GPU-hours of `gpus` GPUs held for `seconds`."""
    return GpuHours(gpus * seconds / 3600.0)


class Watts(Quantity):
    """Power: energy per unit of time (1 kWh over an hour is 1,000 W)."""

    symbol = "W"
