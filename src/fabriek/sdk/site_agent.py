"""The client a site's agent uses: its own site's desired state, and its reports, with
the site's token (`fsa_...`, from `fabriek sites agent-token SITE`); and the site's Slurm
accounting it pushes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import httpx

from fabriek.domain.site_state import AgentReport, DesiredState
from fabriek.sdk.core import HttpCore
from fabriek.sdk.errors import ApiError


class SiteAgentClient:
    """One site's agent talking to the control plane; every error is an `ApiError` (the
    server's problem) or `ApiUnreachable` (no answer)."""

    def __init__(
        self,
        base_url: str,
        site: str,
        token: str,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.site = site
        self._core = HttpCore(base_url, token, timeout=timeout, transport=transport)
        self._prefix = f"/sites/{site}/agent"

    def close(self) -> None:
        self._core.close()

    def __enter__(self) -> SiteAgentClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """A GET under this site's agent routes (`path` after `/sites/SITE/agent`)."""
        return self._core.get(f"{self._prefix}{path}", params)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        """A JSON POST under this site's agent routes."""
        return self._core.request("POST", f"{self._prefix}{path}", json=body).json()

    def desired_state(self) -> DesiredState:
        """What the site should look like now."""
        body = self.get("/desired-state")
        try:
            return DesiredState.from_json(body)
        except ValueError as exc:
            raise ApiError(
                502, f"the control plane's desired state is not readable: {exc}"
            ) from None

    def report(self, report: AgentReport) -> None:
        """Tell the control plane what was applied, found changed by hand, or failed."""
        self.post("/reports", report.to_json())

    def push_accounting(
        self, sacct: str, through: datetime | None = None, fields: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """Send a batch of the site's accounting: `sacct --parsable2 --noheader` output
        (the fields of `SACCT_FORMAT` unless `fields` names others), and when sacct ran.
        What the harvest did: added, corrected, unmatched, ..."""
        body: dict[str, Any] = {"sacct": sacct}
        if through is not None:
            body["through"] = through.isoformat()
        if fields is not None:
            body["fields"] = list(fields)
        answer: dict[str, Any] = self.post("/accounting", body)
        return answer
