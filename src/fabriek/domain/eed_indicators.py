"""The EU data-centre report's data files: the versioned indicator list
(`config/eed_indicators.toml`: every indicator of Delegated Regulation (EU) 2024/1364 with its
kind and citation, and the KPIs) and the operator's annual figures (a file of `[[report]]`
tables), each checked against its model before its values are used. Pure: `domain.eed`
assembles the report from them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any

from pydantic import Field, StringConstraints, create_model

from fabriek.domain.config_files import FileTable, read_table

Value = float | str | list[str]


# --- The indicator list, as versioned data ------------------------------------------------


class IndicatorSpec(FileTable):
    """One indicator of the list, as its `[[indicator]]` table states it."""

    key: str
    name: str
    kind: str  # number | text | list
    citation: str
    required: bool
    confirmed: bool
    fabriek: str = ""
    symbol: str = ""
    unit: str = ""


class KpiSpec(FileTable):
    """One KPI of the list, as its `[[kpi]]` table states it."""

    key: str
    name: str
    formula: str
    unit: str
    citation: str
    confirmed: bool


@dataclass(frozen=True)
class IndicatorSet:
    version: str
    regulation: str
    directive: str
    threshold_kw: float
    indicators: tuple[IndicatorSpec, ...]
    kpis: tuple[KpiSpec, ...]


KINDS = ("number", "text", "list")
# The keys the formulas below rely on; the data file must define them.
NEEDED = (
    "pd_it_kw",
    "e_dc_kwh",
    "e_it_kwh",
    "w_in_m3",
    "w_in_pot_m3",
    "e_reuse_kwh",
    "e_res_goo_kwh",
    "e_res_ppa_kwh",
    "e_res_os_kwh",
    "e_res_tot_kwh",
    "e_dc_bg_kwh",
    "co2_kg",
    "grid_intensity_g_per_kwh",
    "name",
    "pd_it_metric",
)
# Figures that may be below zero (a temperature); every other number must be >= 0.
SIGNED = frozenset({"t_wh_c", "t_in_setpoint_c"})


class _IndicatorFile(FileTable):
    """The shape of eed_indicators.toml."""

    version: str
    regulation: str
    directive: str
    threshold_kw: float
    indicator: list[IndicatorSpec]
    kpi: list[KpiSpec]


def parse_indicator_set(data: Mapping[str, Any]) -> IndicatorSet:
    """The indicator list from the parsed TOML; ValueError says what is wrong."""
    file = read_table(_IndicatorFile, data)
    indicators, kpis = tuple(file.indicator), tuple(file.kpi)
    out = IndicatorSet(
        file.version, file.regulation, file.directive, file.threshold_kw, indicators, kpis
    )
    keys = [s.key for s in indicators]
    if len(keys) != len(set(keys)):
        raise ValueError("indicator keys must be unique")
    if bad_kind := [s.key for s in indicators if s.kind not in KINDS]:
        raise ValueError(f"indicators with an unknown kind: {bad_kind}")
    if absent := [k for k in NEEDED if k not in keys]:
        raise ValueError(f"the indicator list lacks {absent}")
    return out


# The operator's annual figures: a TOML file of `[[report]]` tables, each a site and a year
# with indicator keys. Its shape follows the indicator list, so the model is made from it.
OperatorFigures = dict[tuple[str, int], dict[str, Value]]

_NonEmptyText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


@lru_cache(maxsize=8)
def _report_table(spec: IndicatorSet) -> type[FileTable]:
    """One `[[report]]` table: `site`, `year` and the indicator list's keys, each of its kind
    (a number finite, and >= 0 unless it is a temperature); no other key."""
    fields: dict[str, Any] = {"site": (_NonEmptyText, ...), "year": (int, ...)}
    for s in spec.indicators:
        if s.kind == "number":
            low = None if s.key in SIGNED else 0.0
            kind: Any = Annotated[float, Field(ge=low, allow_inf_nan=False)]
        elif s.kind == "text":
            kind = _NonEmptyText
        else:
            kind = list[str]
        fields[s.key] = (kind | None, None)
    return create_model("ReportTable", __base__=FileTable, **fields)


@lru_cache(maxsize=8)
def _figures_file(spec: IndicatorSet) -> type[FileTable]:
    reports: Any = Annotated[list[_report_table(spec)], Field(min_length=1)]  # type: ignore[misc]
    return create_model("FiguresFile", __base__=FileTable, report=(reports, ...))


def parse_operator_figures(spec: IndicatorSet, data: Mapping[str, Any]) -> OperatorFigures:
    """The operator's figures by (site, year) from the parsed TOML, checked against the
    indicator list (`domain.config_files`: no unknown key, no coerced value). ValueError
    names the first wrong key."""
    checked = read_table(_figures_file(spec), data).model_dump(exclude_none=True)
    out: OperatorFigures = {}
    for i, figures in enumerate(checked["report"], start=1):
        site, year = figures.pop("site"), figures.pop("year")
        if (site, year) in out:
            raise ValueError(f"report {i} repeats site {site!r}, year {year}")
        out[(site, year)] = figures
    return out
