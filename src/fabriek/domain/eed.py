"""The EU data-centre report: Directive (EU) 2023/1791 Art. 12, Delegated Regulation (EU)
2024/1364 Annexes I-III. Pure: the indicator list comes in as data (the versioned
`config/eed_indicators.toml`, read by `domain.eed_indicators`), the operator's figures and what Fabriek knows come in as
values, and out come the report, its KPIs, its validation errors and what is still owed.

Precedence for every indicator: the operator's own figure (metered, as the regulation
asks) over Fabriek's estimate, and an estimate is marked as such and still listed as owed.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from fabriek.domain.eed_indicators import SIGNED, IndicatorSet, Value
from fabriek.domain.energy import (
    Figure,
    Source,
    carbon_at,
    facility_energy,
    kwh,
    site_pue,
    water_litres,
)
from fabriek.domain.units import KilowattHours


class Status(StrEnum):
    """How complete one indicator is."""

    REPORTED = "reported"  # the operator's figure
    COMPUTED = "computed"  # derived by the regulation's own rule from reported figures
    ESTIMATED = "estimated"  # Fabriek's estimate: the operator still owes the real figure
    MISSING = "missing"


# --- KPIs and validation ------------------------------------------------------------------


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den <= 0:
        return None
    return num / den


def compute_kpis(
    e_dc_kwh: float | None,
    e_it_kwh: float | None,
    w_in_m3: float | None = None,
    e_reuse_kwh: float | None = None,
    e_res_tot_kwh: float | None = None,
    co2_kg: float | None = None,
) -> dict[str, float | None]:
    """Annex III: PUE = EDC/EIT, WUE = WIN (m3) / EIT (MWh), ERF = EREUSE/EDC,
    REF = ERES-TOT/EDC; and CUE = CO2/EIT (kg/kWh), ERE = (EDC - EREUSE)/EIT. A KPI whose
    inputs are missing, or whose denominator is zero, is None."""
    e_it_mwh = None if e_it_kwh is None else e_it_kwh / 1000.0
    ere_num = None if e_dc_kwh is None or e_reuse_kwh is None else e_dc_kwh - e_reuse_kwh
    return {
        "pue": _ratio(e_dc_kwh, e_it_kwh),
        "wue": _ratio(w_in_m3, e_it_mwh),
        "erf": _ratio(e_reuse_kwh, e_dc_kwh),
        "ref": _ratio(e_res_tot_kwh, e_dc_kwh),
        "cue": _ratio(co2_kg, e_it_kwh),
        "ere": _ratio(ere_num, e_it_kwh),
    }


def validate(numbers: Mapping[str, float | None], kpis: Mapping[str, float | None]) -> list[str]:
    """What makes the report impossible, each in one sentence; empty when it is consistent.

    `numbers` holds the figures by indicator key (None when absent). Missing figures are
    not errors here: completeness flags list them.
    """
    n = numbers
    errors: list[str] = []
    for key, value in n.items():
        if value is not None and key not in SIGNED and value < 0:
            errors.append(f"{key} = {value:g} is negative")
    e_it, e_dc = n.get("e_it_kwh"), n.get("e_dc_kwh")
    if e_it is not None and e_it <= 0:
        errors.append(
            f"EIT is {e_it:g} kWh: PUE, WUE, CUE and ERE cannot be computed; give e_it_kwh "
            "(metered at the UPS outputs, Annex II 1(e))"
        )
    if (pue := kpis.get("pue")) is not None and pue < 1.0:
        errors.append(
            f"PUE = EDC/EIT = {pue:.3f} < 1: EDC ({e_dc:g} kWh) must be >= EIT ({e_it:g} kWh)"
        )
    if (erf := kpis.get("erf")) is not None and not 0.0 <= erf <= 1.0:
        errors.append(
            f"ERF = EREUSE/EDC = {erf:.3f} is outside [0, 1]: reused heat "
            f"({n.get('e_reuse_kwh'):g} kWh) cannot exceed EDC ({e_dc:g} kWh)"
        )
    if (ref := kpis.get("ref")) is not None and not 0.0 <= ref <= 1.0:
        errors.append(
            f"REF = ERES-TOT/EDC = {ref:.3f} is outside [0, 1]: renewable energy "
            f"({n.get('e_res_tot_kwh'):g} kWh) cannot exceed EDC ({e_dc:g} kWh)"
        )
    w_in, w_pot = n.get("w_in_m3"), n.get("w_in_pot_m3")
    if w_in is not None and w_pot is not None and w_pot > w_in:
        errors.append(f"potable water WIN-POT ({w_pot:g} m3) exceeds total water WIN ({w_in:g} m3)")
    bg = n.get("e_dc_bg_kwh")
    if bg is not None and e_dc is not None and bg > e_dc:
        errors.append(f"back-up generator energy EDC-BG ({bg:g} kWh) exceeds EDC ({e_dc:g} kWh)")
    return errors


# --- Assembling one report ------------------------------------------------------------------


@dataclass(frozen=True)
class FabriekKnows:
    """What the factory itself knows of a site and year (from the store and the ledger)."""

    site: str
    year: int
    installed_it_kw: Figure | None = None  # estimate from node groups
    e_it: Figure | None = None  # ledger, or modelled from jobs
    declared_pue: float | None = None
    declared_wue_l_per_kwh: float | None = None


@dataclass(frozen=True)
class Entry:
    """One indicator of one report."""

    key: str
    symbol: str
    name: str
    value: Value | None
    unit: str
    status: Status
    source: str  # a Source value, or "" when missing
    method: str
    citation: str
    confirmed: bool


@dataclass(frozen=True)
class KpiValue:
    key: str
    name: str
    value: float | None
    unit: str
    formula: str
    citation: str
    confirmed: bool


@dataclass
class EedReport:
    """One site's report for one year, with its checks."""

    site: str
    year: int
    version: str
    regulation: str
    in_scope: bool | None  # installed IT power >= the threshold; None if unknown
    entries: list[Entry]
    kpis: list[KpiValue]
    errors: list[str] = field(default_factory=list)
    owed: list[str] = field(default_factory=list)  # required keys missing or only estimated

    @property
    def valid(self) -> bool:
        return not self.errors

    def value(self, key: str) -> Value | None:
        return next((e.value for e in self.entries if e.key == key), None)

    def kpi(self, key: str) -> float | None:
        return next((k.value for k in self.kpis if k.key == key), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "year": self.year,
            "version": self.version,
            "regulation": self.regulation,
            "in_scope": self.in_scope,
            "valid": self.valid,
            "errors": self.errors,
            "owed": self.owed,
            "indicators": [asdict(e) for e in self.entries],
            "kpis": [asdict(k) for k in self.kpis],
        }


def _num(v: Value | None) -> float | None:
    return v if isinstance(v, float) else None


# What the report holds for each key so far: value, status, source and method.
_Chosen = dict[str, tuple[Value | None, Status, str, str]]


def assemble_report(
    spec: IndicatorSet, knows: FabriekKnows, operator: Mapping[str, Value]
) -> EedReport:
    """The report of one site and year: the operator's figures first, Fabriek's estimates
    where the operator gives none, the KPIs, the validation errors and the owed fields."""
    chosen: _Chosen = {
        key: (given, Status.REPORTED, Source.DECLARED_OPERATOR, "operator's figures file")
        for key, given in operator.items()
    }
    _estimate(chosen, knows)
    errors = _renewables(chosen)
    _carbon(chosen)
    entries = _entries(spec, chosen)
    numbers = {e.key: _num(e.value) for e in entries if isinstance(e.value, float)}
    values = compute_kpis(
        numbers.get("e_dc_kwh"),
        numbers.get("e_it_kwh"),
        numbers.get("w_in_m3"),
        numbers.get("e_reuse_kwh"),
        numbers.get("e_res_tot_kwh"),
        numbers.get("co2_kg"),
    )
    kpis = [
        KpiValue(k.key, k.name, values.get(k.key), k.unit, k.formula, k.citation, k.confirmed)
        for k in spec.kpis
    ]
    errors += validate(numbers, values)
    owed = [
        e.key
        for e, s in zip(entries, spec.indicators, strict=True)
        if s.required and e.status in (Status.MISSING, Status.ESTIMATED)
    ]
    pd_it = numbers.get("pd_it_kw")
    return EedReport(
        site=knows.site,
        year=knows.year,
        version=spec.version,
        regulation=spec.regulation,
        in_scope=None if pd_it is None else pd_it >= spec.threshold_kw,
        entries=entries,
        kpis=kpis,
        errors=[f"{knows.site} {knows.year}: {e}" for e in errors],
        owed=owed,
    )


def _chosen_number(chosen: _Chosen, key: str) -> float | None:
    return _num(chosen.get(key, (None,))[0])


def _estimate(chosen: _Chosen, knows: FabriekKnows) -> None:
    """Fabriek's estimates (name, PDIT, EIT, EDC, WIN) where the operator gives no figure."""
    if "name" not in chosen:
        chosen["name"] = (knows.site, Status.COMPUTED, "store", "the site's name in Fabriek")
    if "pd_it_kw" not in chosen and knows.installed_it_kw is not None:
        fig = knows.installed_it_kw
        chosen["pd_it_kw"] = (fig.value, Status.ESTIMATED, fig.source, fig.method)
        if "pd_it_metric" not in chosen:
            chosen["pd_it_metric"] = (
                "installed",
                Status.ESTIMATED,
                fig.source,
                "Fabriek's estimate",
            )
    if "e_it_kwh" not in chosen and knows.e_it is not None:
        fig = knows.e_it
        chosen["e_it_kwh"] = (fig.value, Status.ESTIMATED, fig.source, fig.method)
    e_it = _chosen_number(chosen, "e_it_kwh")
    eit = kwh(e_it, Source.LEDGER, "EIT") if e_it is not None else None
    if "e_dc_kwh" not in chosen and eit is not None and knows.declared_pue is not None:
        # Sites are registered with a PUE of at least 1, so site_pue never refuses this one.
        edc = facility_energy(eit, site_pue(knows.declared_pue))
        method = f"EIT × declared PUE {knows.declared_pue:g}"
        chosen["e_dc_kwh"] = (edc.value, Status.ESTIMATED, edc.source, method)
    if "w_in_m3" not in chosen and eit is not None and knows.declared_wue_l_per_kwh is not None:
        wue = knows.declared_wue_l_per_kwh
        water = water_litres(eit, wue)
        method = f"EIT × declared WUE {wue:g} L/kWh ÷ 1000"
        # L to m³
        chosen["w_in_m3"] = (water.value / 1000.0, Status.ESTIMATED, water.source, method)


def _renewables(chosen: _Chosen) -> list[str]:
    """ERES-TOT as the sum of its parts where any is given; an error where a stated total
    disagrees with them."""
    parts = [_chosen_number(chosen, k) for k in ("e_res_goo_kwh", "e_res_ppa_kwh", "e_res_os_kwh")]
    if all(p is None for p in parts):
        return []
    total = math.fsum(p or 0.0 for p in parts)
    stated = _chosen_number(chosen, "e_res_tot_kwh")
    if stated is not None and not math.isclose(stated, total, rel_tol=1e-6, abs_tol=1e-6):
        return [
            f"ERES-TOT ({stated:g} kWh) must equal ERES-GOO + ERES-PPA + ERES-OS ({total:g} kWh)"
        ]
    method = "ERES-GOO + ERES-PPA + ERES-OS"
    chosen["e_res_tot_kwh"] = (total, Status.COMPUTED, "formula", method)
    return []


def _carbon(chosen: _Chosen) -> None:
    """Location-based CO2 from EDC and the grid intensity, where the operator states none."""
    e_dc = _chosen_number(chosen, "e_dc_kwh")
    intensity = _chosen_number(chosen, "grid_intensity_g_per_kwh")
    if "co2_kg" not in chosen and e_dc is not None and intensity is not None:
        chosen["co2_kg"] = (
            carbon_at(KilowattHours(e_dc), intensity).value,
            Status.COMPUTED,
            Source.GRID_INTENSITY,
            f"EDC × {intensity:g} g/kWh ÷ 1000 (location-based)",
        )


def _entries(spec: IndicatorSet, chosen: _Chosen) -> list[Entry]:
    """One entry per indicator of the list, in its order; missing where nothing was chosen."""
    entries: list[Entry] = []
    for s in spec.indicators:
        value, status, source, method = chosen.get(s.key, (None, Status.MISSING, "", ""))
        entries.append(
            Entry(
                s.key, s.symbol, s.name, value, s.unit, status, str(source), method, s.citation,
                s.confirmed,
            )
        )  # fmt: skip
    return entries


# --- Export ---------------------------------------------------------------------------------


def to_json(reports: Sequence[EedReport]) -> str:
    """The reports as one JSON document."""
    return json.dumps({"reports": [r.to_dict() for r in reports]}, indent=2, ensure_ascii=False)


CSV_COLUMNS = (
    "site",
    "year",
    "kind",
    "key",
    "symbol",
    "value",
    "unit",
    "status",
    "source",
    "method",
    "citation",
    "confirmed",
)


def _cell(v: Value | float | None) -> str:
    if v is None:
        return ""
    if isinstance(v, list):
        return "; ".join(v)
    if isinstance(v, float):
        return repr(v)  # exact: a CSV reader gets back the same float
    return v


def to_csv(reports: Sequence[EedReport]) -> str:
    """The reports in long form: one row per site, year and indicator or KPI."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in reports:
        for e in r.entries:
            w.writerow(
                [
                    r.site,
                    r.year,
                    "indicator",
                    e.key,
                    e.symbol,
                    _cell(e.value),
                    e.unit,
                    e.status.value,
                    e.source,
                    e.method,
                    e.citation,
                    e.confirmed,
                ]
            )
        for k in r.kpis:
            w.writerow(
                [
                    r.site,
                    r.year,
                    "kpi",
                    k.key,
                    k.key.upper(),
                    _cell(k.value),
                    k.unit,
                    Status.COMPUTED.value if k.value is not None else Status.MISSING.value,
                    "formula",
                    k.formula,
                    k.citation,
                    k.confirmed,
                ]
            )
    return buf.getvalue()
