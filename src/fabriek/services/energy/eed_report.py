"""The EU data-centre report per site and year: the operator's figures merged with what the
store knows (the site's PUE, WUE and node groups; the metering ledger of the jobs that ran there).

Reading files and the store happens here; the formulas and checks are in `domain.eed`.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fabriek.domain.eed import EedReport, FabriekKnows, assemble_report
from fabriek.domain.eed_indicators import (
    IndicatorSet,
    OperatorFigures,
    Value,
    parse_indicator_set,
    parse_operator_figures,
)
from fabriek.domain.energy import (
    CPU_FULL_W_PER_CORE,
    Figure,
    Source,
    Unit,
    kwh,
)
from fabriek.domain.errors import InvalidInput
from fabriek.domain.gpus import GPU_TYPES
from fabriek.services.config_files import load_config_file
from fabriek.store.tables import JobEnergyRow, SiteRow

INDICATORS_FILE = "eed_indicators.toml"
DEMO_FIGURES_FILE = "eed_demo_figures.toml"


def load_indicator_set(path: Path | None = None) -> IndicatorSet:
    """The versioned indicator list: the shipped one, or another file (a newer version)."""
    return load_config_file(path, INDICATORS_FILE, "indicator list", parse_indicator_set)


def load_operator_figures(
    path: Path | None = None, spec: IndicatorSet | None = None
) -> OperatorFigures:
    """The operator's annual figures by (site, year) from a TOML file of `[[report]]` tables
    (each with `site`, `year` and indicator keys); default: the demo factory's figures."""
    checked_against = spec or load_indicator_set()
    return load_config_file(
        path,
        DEMO_FIGURES_FILE,
        "figures",
        lambda data: parse_operator_figures(checked_against, data),
    )


def installed_it_power(site: SiteRow) -> Figure | None:
    """PDIT estimated from the node groups: GPUs at their data-sheet TDP plus CPU cores at full
    power. Servers only: storage and network are not in the store, so this underestimates."""
    if not site.node_groups:
        return None
    watts = 0.0
    for g in site.node_groups:
        gpu = GPU_TYPES.get(g.gpu_type or "")
        per_node = (
            gpu.tdp_w * g.gpus_per_node if gpu else 0.0
        ) + g.cpus_per_node * CPU_FULL_W_PER_CORE
        watts += g.count * per_node
    return Figure(
        watts / 1000.0,
        Unit.KW,
        Source.ESTIMATED_NAMEPLATE,
        f"Σ node groups: GPUs × TDP + CPU cores × {CPU_FULL_W_PER_CORE:g} W (servers only)",
    )


def ledger_it_energy(session: Session, site: SiteRow, year: int) -> Figure:
    """EIT from the metering ledger: the hourly IT energy (GPUs and CPUs) of every job run
    at this site that ended, within the year. Per hour each record is measured (NVML) or
    modelled (power model), as its source says; the method counts both. Idle nodes, storage,
    network and cooling inside the IT room are not in it, so it underestimates a metered
    EIT (the regulation asks for the UPS output): the operator's figure wins."""
    start = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    rows = session.execute(
        select(JobEnergyRow.source, func.sum(JobEnergyRow.gpu_kwh), func.sum(JobEnergyRow.cpu_kwh))
        .where(
            JobEnergyRow.site_id == site.id,
            JobEnergyRow.hour >= start,
            JobEnergyRow.hour < end,
        )
        .group_by(JobEnergyRow.source)
    ).all()
    total = math.fsum(float(g or 0.0) + float(c or 0.0) for _, g, c in rows)
    measured = math.fsum(float(g or 0.0) for src, g, _ in rows if src.startswith("measured"))
    return kwh(
        total,
        Source.LEDGER,
        f"metering ledger at {site.name} in {year}: Σ per-job hourly IT energy "
        f"({measured:,.1f} kWh of GPU energy measured by NVML, the rest modelled)",
    )


def find_site(session: Session, name: str) -> SiteRow:
    site = session.scalar(select(SiteRow).where(SiteRow.name == name))
    if site is None:
        known = ", ".join(session.scalars(select(SiteRow.name).order_by(SiteRow.name)))
        raise InvalidInput(f"no site {name!r}; known: {known or 'none'}")
    return site


def build_report(
    session: Session,
    site: SiteRow | str,
    year: int,
    operator_figures: dict[str, Value] | None,
    it_energy_kwh: float | None,
    *,
    spec: IndicatorSet | None = None,
) -> EedReport:
    """The report of one site and year.

    EIT: the operator's metered figure (`e_it_kwh` in its file; the regulation asks for a
    UPS-output measurement) wins; else `it_energy_kwh` when the caller gives one; else the
    metering ledger's sum for the site and year, marked as Fabriek's estimate.
    """
    spec = spec or load_indicator_set()
    row = find_site(session, site) if isinstance(site, str) else site
    if it_energy_kwh is not None:
        e_it = kwh(it_energy_kwh, Source.LEDGER, "given: Σ per-job IT energy")
    else:
        e_it = ledger_it_energy(session, row, year)
    knows = FabriekKnows(
        site=row.name,
        year=year,
        installed_it_kw=installed_it_power(row),
        e_it=e_it,
        declared_pue=row.pue,
        declared_wue_l_per_kwh=row.wue_l_per_kwh,
    )
    return assemble_report(spec, knows, operator_figures or {})


def build_reports(
    session: Session,
    year: int,
    figures: OperatorFigures,
    site: str | None = None,
) -> list[EedReport]:
    """Reports of every site (or one) for a year, in name order."""
    spec = load_indicator_set()
    if site is not None:
        rows = [find_site(session, site)]
    else:
        rows = list(session.scalars(select(SiteRow).order_by(SiteRow.name)))
    return [
        build_report(session, r, year, figures.get((r.name, year)), None, spec=spec) for r in rows
    ]
