"""A project's endpoint API keys and its endpoints' usage per key and day."""

from __future__ import annotations

from datetime import date

from fabriek.domain.endpoint_keys import (
    EndpointEnergy,
    EndpointKeyDraft,
    EndpointKeyInfo,
    EndpointUsage,
    NewEndpointKey,
)
from fabriek.sdk.core import SubClient


class EndpointKeysClient(SubClient):
    """`client.endpoint_keys`: keys for the OpenAI-compatible gateway, and usage."""

    def create(self, project: str, draft: EndpointKeyDraft) -> NewEndpointKey:
        """A new key; its secret (`key`) is shown this once."""
        return NewEndpointKey.model_validate(
            self._core.post(f"/projects/{project}/endpoint-keys", draft)
        )

    def list_keys(self, project: str, include_revoked: bool = False) -> list[EndpointKeyInfo]:
        """The project's keys (never their secrets)."""
        params = {"include_revoked": "true"} if include_revoked else None
        return self._core.items(EndpointKeyInfo, f"/projects/{project}/endpoint-keys", params)

    def revoke(self, project: str, key: str) -> EndpointKeyInfo:
        """Revoke a key by id, prefix or name."""
        found = self._core.request("DELETE", f"/projects/{project}/endpoint-keys/{key}").json()
        return EndpointKeyInfo.model_validate(found)

    def usage(
        self,
        project: str,
        since: date | None = None,
        until: date | None = None,
        key: str | None = None,
    ) -> list[EndpointUsage]:
        """Requests and tokens per caller, endpoint and day (UTC)."""
        params = {
            "from": since and since.isoformat(),
            "to": until and until.isoformat(),
            "key": key,
        }
        return self._core.items(EndpointUsage, f"/projects/{project}/endpoint-usage", params)

    def energy(
        self, project: str, since: date | None = None, until: date | None = None
    ) -> list[EndpointEnergy]:
        """Each endpoint's energy and carbon, and both per 1,000 tokens."""
        params = {"from": since and since.isoformat(), "to": until and until.isoformat()}
        return self._core.items(EndpointEnergy, f"/projects/{project}/endpoint-energy", params)
