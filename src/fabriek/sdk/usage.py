"""What the factory's work used: GPU-hours, energy, carbon, water and reused heat."""

from __future__ import annotations

from fabriek.domain.usage import UsageLine
from fabriek.sdk.core import SubClient


class UsageClient(SubClient):
    """`client.usage`: the accounts of use, summed."""

    def lines(
        self,
        by: str = "project",
        step: str = "total",
        month: str | None = None,
        year: str | None = None,
    ) -> list[UsageLine]:
        """GPU-hours, energy, carbon, water and reused heat, summed `by` a level per `step`."""
        params = {"by": by, "step": step, "month": month, "year": year}
        return self._core.items(UsageLine, "/usage", params)
