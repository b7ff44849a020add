"""Access tracks: the ways into the factory, each with its eligibility, size, clock and tier.

Tracks are configuration, not code: the factory ships the access modes of the EuroHPC AI
Factories (with their sources, in `fabriek/config/access.toml`) and an operator may add or
change tracks with a file of the same shape. This module holds the typed values and the
pure rules; reading the file is the service's job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fabriek.domain.errors import InvalidInput
from fabriek.domain.geography import Hub
from fabriek.domain.gpus import GPU_TYPES
from fabriek.domain.organisations import OrganisationKind
from fabriek.domain.units import GpuHours

# The EU and the EEA (ISO 3166-1 alpha-2): where an applicant must be established for the
# tracks that require it.
EU_EEA = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "HU",
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
        "IS",
        "LI",
        "NO",
    ]
)


@dataclass(frozen=True)
class Track:
    """One access track.

    `min_gpu_hours`/`max_gpu_hours` bound a request in normalised GPU-hours. The decision
    is promised within `decision_working_days` working days (Dutch public holidays
    counted) of submission, or of the call's cut-off when `clock_from_cutoff`. A track
    with `peer_review` needs scientific or business reviews before a decision. `hub`
    names the AI hub that runs a regional track: only organisations that hub serves may
    apply. With `run_by_hub`, the applicant's own hub runs it (its staff decide beside
    the access team). Jobs of a `preemptible` track yield to higher tiers.
    """

    code: str
    name: str
    description: str
    eligible_kinds: frozenset[OrganisationKind]
    eu_establishment: bool
    min_gpu_hours: GpuHours
    max_gpu_hours: GpuHours | None
    decision_working_days: int
    clock_from_cutoff: bool
    peer_review: bool
    durations_months: tuple[int, ...]
    preemptible: bool
    tier: int
    hub: Hub | None = None
    run_by_hub: bool = False
    source: str = ""

    def eligibility_problem(
        self, kind: OrganisationKind, country: str, hub: Hub | None
    ) -> str | None:
        """Why an organisation of this kind, country and hub may not apply, or None."""
        if kind not in self.eligible_kinds:
            allowed = ", ".join(sorted(k.value for k in self.eligible_kinds))
            return f"the {self.name} track is open to {allowed}, not to {kind.value}"
        if self.eu_establishment and country.upper() not in EU_EEA:
            return f"the {self.name} track requires an establishment in the EU or EEA"
        if self.hub is not None and hub != self.hub:
            return f"the {self.name} track is run by hub {self.hub.value} for its own region"
        return None

    def size_problem(self, requested: GpuHours) -> str | None:
        """Why a request of this many normalised GPU-hours does not fit the track, or None."""
        if requested.value <= 0:
            return "request at least some GPU-hours"
        if requested.value < self.min_gpu_hours.value:
            return f"the {self.name} track starts at {self.min_gpu_hours}; asked {requested}"
        if self.max_gpu_hours is not None and requested.value > self.max_gpu_hours.value:
            return f"the {self.name} track allows at most {self.max_gpu_hours}; asked {requested}"
        return None


@dataclass(frozen=True)
class AccessConfig:
    """The tracks and the GPU-hour factors: everything access rules read from configuration.

    `gpu_hour_factors[t]` is what one hour of one GPU of type `t` costs in normalised
    GPU-hours, so an hour on a faster GPU draws more from a budget. A type without a
    factor costs 1.
    """

    version: str
    tracks: Mapping[str, Track]
    gpu_hour_factors: Mapping[str, float]

    def factor(self, gpu_type: str | None) -> float:
        """The charge factor of a GPU type (1 for unknown or none)."""
        return self.gpu_hour_factors.get(gpu_type or "", 1.0)

    def normalised(self, requested: Mapping[str, float]) -> GpuHours:
        """Raw GPU-hours per GPU type, as normalised GPU-hours."""
        return GpuHours(sum(hours * self.factor(t) for t, hours in requested.items()))

    def track(self, code: str) -> Track:
        """The track with this code, or an error listing the known ones."""
        found = self.tracks.get(code)
        if found is None:
            raise InvalidInput.on("track", f"no track {code!r}; known: {', '.join(self.tracks)}")
        return found


def _field(table: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in table:
        raise ValueError(f"{where}: missing '{key}'")
    return table[key]


def parse_access_config(data: Mapping[str, Any]) -> AccessConfig:
    """An `AccessConfig` from the parsed TOML; a ValueError names the first bad entry."""
    factors: dict[str, float] = {}
    for gpu, value in dict(data.get("gpu_hour_factors", {})).items():
        if gpu not in GPU_TYPES:
            raise ValueError(
                f"gpu_hour_factors: no GPU type {gpu!r}; known: {', '.join(GPU_TYPES)}"
            )
        if not isinstance(value, int | float) or value <= 0:
            raise ValueError(f"gpu_hour_factors.{gpu}: must be a number above zero")
        factors[gpu] = float(value)
    tracks: dict[str, Track] = {}
    for i, entry in enumerate(data.get("tracks", [])):
        where = f"tracks[{i}]"
        code = str(_field(entry, "code", where))
        where = f"track {code!r}"
        try:
            kinds = frozenset(OrganisationKind(k) for k in _field(entry, "eligible_kinds", where))
            hub = Hub(entry["hub"]) if entry.get("hub") else None
        except ValueError as bad:
            raise ValueError(f"{where}: {bad}") from None
        maximum = entry.get("max_gpu_hours")
        durations = tuple(int(m) for m in _field(entry, "durations_months", where))
        if not durations or any(m <= 0 for m in durations):
            raise ValueError(f"{where}: durations_months must list months above zero")
        if code in tracks:
            raise ValueError(f"{where}: defined twice")
        tracks[code] = Track(
            code=code,
            name=str(_field(entry, "name", where)),
            description=str(entry.get("description", "")),
            eligible_kinds=kinds,
            eu_establishment=bool(entry.get("eu_establishment", True)),
            min_gpu_hours=GpuHours(float(entry.get("min_gpu_hours", 0))),
            max_gpu_hours=GpuHours(float(maximum)) if maximum is not None else None,
            decision_working_days=int(_field(entry, "decision_working_days", where)),
            clock_from_cutoff=bool(entry.get("clock_from_cutoff", False)),
            peer_review=bool(entry.get("peer_review", False)),
            durations_months=durations,
            preemptible=bool(entry.get("preemptible", False)),
            tier=int(entry.get("tier", 0)),
            hub=hub,
            run_by_hub=bool(entry.get("run_by_hub", False)),
            source=str(entry.get("source", "")),
        )
    if not tracks:
        raise ValueError("no tracks: an access configuration needs at least one [[tracks]]")
    return AccessConfig(str(data.get("version", "")), tracks, factors)
