"""The factory's sites and the reference lists (GPU types, provinces, AI hubs)."""

from __future__ import annotations

from typing import Any

from fabriek.domain.site_agent_status import AgentStatus
from fabriek.domain.sites import Site, SiteDraft, SitePatch
from fabriek.sdk.core import Listing, SubClient


class SitesClient(SubClient):
    """`client.sites`: where the GPUs are."""

    def list(self, limit: int = 100, offset: int = 0, **filters: Any) -> Listing[Site]:
        """The sites; filters: province, gpu_type."""
        return self._core.listing(Site, "/sites", {"limit": limit, "offset": offset, **filters})

    def get(self, ref: str) -> Site:
        """One site by name or number."""
        return Site.model_validate(self._core.get(f"/sites/{ref}"))

    def create(self, draft: SiteDraft) -> Site:
        """Register a site (admins)."""
        return Site.model_validate(self._core.post("/sites", draft))

    def update(self, ref: str, patch: SitePatch) -> Site:
        """Change a site (admins)."""
        return Site.model_validate(self._core.send("PATCH", f"/sites/{ref}", patch))

    def agent_token(self, ref: str) -> str:
        """A new token for the site's agent, replacing the old (admins, its operators);
        the server shows it this once."""
        return str(self._core.post(f"/sites/{ref}/agent-token")["token"])

    def agent(self, ref: str) -> AgentStatus:
        """The site's agent: last seen, in step or not, drift and errors."""
        return AgentStatus.model_validate(self._core.get(f"/sites/{ref}/agent"))

    def harvest(self, ref: str) -> dict[str, Any]:
        """Where the harvest of the site's Slurm accounting stands: its cursor, runs and
        jobs counted, and runs of users or accounts Fabriek does not know (admins, its
        operators)."""
        answer: dict[str, Any] = self._core.get(f"/sites/{ref}/harvest")
        return answer

    def harvest_now(self, ref: str) -> dict[str, Any]:
        """Read the site's accounting from its slurmrestd now: what was added, corrected,
        left unmatched."""
        answer: dict[str, Any] = self._core.post(f"/sites/{ref}/harvest")
        return answer

    # Reference lists are plain JSON: their shapes belong to the API, not to the domain.

    def gpu_types(self) -> Any:
        """The GPU types the factory knows, with their peak figures."""
        return self._core.get("/reference/gpu-types")

    def provinces(self) -> Any:
        """The Dutch provinces, as the API spells them."""
        return self._core.get("/reference/provinces")

    def hubs(self) -> Any:
        """The AI hubs and their provinces."""
        return self._core.get("/reference/hubs")
