"""Access tracks: the ways into the factory, each with its eligibility, size, clock and tier.

Tracks are configuration, not code: the factory ships the access modes of the EuroHPC AI
Factories (with their sources, in `fabriek/config/access.toml`) and an operator may add or
change tracks with a file of the same shape. This module holds the typed values and the
pure rules; reading the file is the service's job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fabriek.domain.config_files import FileTable, FromText, read_table
from fabriek.domain.errors import InvalidInput
from fabriek.domain.geography import Hub
from fabriek.domain.gpus import GPU_TYPES
from fabriek.domain.identity.organisations import OrganisationKind
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


class _TrackTable(FileTable):
    """One `[[tracks]]` table of the access file (docs/access.md explains each key)."""

    code: str
    name: str
    description: str = ""
    eligible_kinds: list[Annotated[OrganisationKind, FromText]]
    eu_establishment: bool = True
    min_gpu_hours: float = 0.0
    max_gpu_hours: float | None = None
    decision_working_days: int
    clock_from_cutoff: bool = False
    peer_review: bool = False
    durations_months: list[int]
    preemptible: bool = False
    tier: int = 0
    hub: Annotated[Hub, FromText] | None = None
    run_by_hub: bool = False
    source: str = ""


class _AccessFile(FileTable):
    version: str = ""
    gpu_hour_factors: dict[str, float] = {}
    tracks: list[_TrackTable] = []


def parse_access_config(data: Mapping[str, Any]) -> AccessConfig:
    """An `AccessConfig` from the parsed TOML; a ValueError names the first bad entry."""
    file = read_table(_AccessFile, data)
    factors: dict[str, float] = {}
    for gpu, value in file.gpu_hour_factors.items():
        if gpu not in GPU_TYPES:
            raise ValueError(
                f"gpu_hour_factors: no GPU type {gpu!r}; known: {', '.join(GPU_TYPES)}"
            )
        if value <= 0:
            raise ValueError(f"gpu_hour_factors.{gpu}: must be a number above zero")
        factors[gpu] = value
    tracks: dict[str, Track] = {}
    for entry in file.tracks:
        where = f"track {entry.code!r}"
        durations = tuple(entry.durations_months)
        if not durations or any(m <= 0 for m in durations):
            raise ValueError(f"{where}: durations_months must list months above zero")
        if entry.code in tracks:
            raise ValueError(f"{where}: defined twice")
        maximum = entry.max_gpu_hours
        tracks[entry.code] = Track(
            code=entry.code,
            name=entry.name,
            description=entry.description,
            eligible_kinds=frozenset(entry.eligible_kinds),
            eu_establishment=entry.eu_establishment,
            min_gpu_hours=GpuHours(entry.min_gpu_hours),
            max_gpu_hours=GpuHours(maximum) if maximum is not None else None,
            decision_working_days=entry.decision_working_days,
            clock_from_cutoff=entry.clock_from_cutoff,
            peer_review=entry.peer_review,
            durations_months=durations,
            preemptible=entry.preemptible,
            tier=entry.tier,
            hub=entry.hub,
            run_by_hub=entry.run_by_hub,
            source=entry.source,
        )
    if not tracks:
        raise ValueError("no tracks: an access configuration needs at least one [[tracks]]")
    return AccessConfig(file.version, tracks, factors)
