"""How compute figures are written for people: FLOP counts to a few significant figures.

A module of its own, light to import, because warnings on every job and the registry's
documents both write figures, and neither should load the AI Act's rules to do it."""

from __future__ import annotations

import math


def significant(value: float, figures: int = 2) -> str:
    """`value` to `figures` significant figures in scientific notation: 6.6e23."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    mantissa, exponent = f"{value:.{figures - 1}e}".split("e")
    return f"{mantissa}e{int(exponent)}"
