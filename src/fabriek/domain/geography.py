"""The Netherlands' twelve provinces and the seven regional AI hubs that serve them.

Reference data, versioned with the code. Which hub serves which province follows the
hubs' own regions (AI Coalitie voor Nederland's regional hubs); provinces without a hub of
their own are served by the neighbouring one named here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Province(StrEnum):
    """The 12 provinces, by their Dutch names as users write them."""

    GRONINGEN = "Groningen"
    FRYSLAN = "Fryslân"
    DRENTHE = "Drenthe"
    OVERIJSSEL = "Overijssel"
    FLEVOLAND = "Flevoland"
    GELDERLAND = "Gelderland"
    UTRECHT = "Utrecht"
    NOORD_HOLLAND = "Noord-Holland"
    ZUID_HOLLAND = "Zuid-Holland"
    ZEELAND = "Zeeland"
    NOORD_BRABANT = "Noord-Brabant"
    LIMBURG = "Limburg"


class Hub(StrEnum):
    """The seven regional AI hubs, by a stable short code."""

    ZUID_HOLLAND = "zuid-holland"
    NOORD_NEDERLAND = "noord-nederland"
    OOST_NEDERLAND = "oost-nederland"
    BRAINPORT = "brainport"
    MIDDEN_NEDERLAND = "midden-nederland"
    AMSTERDAM = "amsterdam"
    BRIGHTLANDS = "brightlands"


@dataclass(frozen=True)
class HubInfo:
    """A hub's display name and the provinces it serves."""

    hub: Hub
    name: str
    provinces: tuple[Province, ...]


HUBS: dict[Hub, HubInfo] = {
    info.hub: info
    for info in (
        HubInfo(Hub.ZUID_HOLLAND, "AI-hub Zuid-Holland", (Province.ZUID_HOLLAND, Province.ZEELAND)),
        HubInfo(
            Hub.NOORD_NEDERLAND,
            "AI-hub Noord-Nederland",
            (Province.GRONINGEN, Province.FRYSLAN, Province.DRENTHE),
        ),
        HubInfo(
            Hub.OOST_NEDERLAND, "AI-hub Oost-Nederland", (Province.OVERIJSSEL, Province.GELDERLAND)
        ),
        HubInfo(Hub.BRAINPORT, "AI-hub Brainport", (Province.NOORD_BRABANT,)),
        HubInfo(Hub.MIDDEN_NEDERLAND, "AI-hub Midden-Nederland", (Province.UTRECHT,)),
        HubInfo(Hub.AMSTERDAM, "AI-hub Amsterdam", (Province.NOORD_HOLLAND, Province.FLEVOLAND)),
        HubInfo(Hub.BRIGHTLANDS, "AI-hub Brightlands", (Province.LIMBURG,)),
    )
}


def hub_for_province(province: Province) -> Hub:
    """The hub that serves a province by default."""
    for info in HUBS.values():
        if province in info.provinces:
            return info.hub
    raise LookupError(province)  # unreachable: every province has a hub (tested)
