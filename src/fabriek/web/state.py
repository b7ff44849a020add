"""What the portal keeps between requests: one `PortalState` per application, on
`app.state.portal` (tests run several applications in one process, each on its own store)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from fabriek.services.identity.oidc_client import RelyingParty, RelyingPartyConfig
from fabriek.services.public_dashboard import Dashboard


@dataclass(frozen=True)
class CachedDashboard:
    """The public dashboard of one period, and when (time.monotonic) it was summed."""

    at: float
    dashboard: Dashboard


@dataclass
class PortalState:
    """The public dashboard's figures per period, and one OpenID Connect relying party per
    configuration (so the provider's keys are read once); `lock` guards both."""

    dashboards: dict[str, CachedDashboard] = field(default_factory=dict)
    relying_parties: dict[RelyingPartyConfig, RelyingParty] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


async def portal_state(request: Request) -> PortalState:
    """This application's portal state (made by `install_portal`)."""
    kept: PortalState = request.app.state.portal
    return kept


Kept = Annotated[PortalState, Depends(portal_state)]
