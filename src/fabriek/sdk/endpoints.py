"""Model endpoints of a project: create, list, show, change (a new model version rolls out),
delete."""

from __future__ import annotations

from fabriek.domain.endpoints import Endpoint, EndpointChange, EndpointDraft
from fabriek.sdk.core import SubClient


class EndpointsClient(SubClient):
    """`client.endpoints`: models served behind Fabriek's OpenAI-compatible gateway."""

    def create(self, project: str, draft: EndpointDraft) -> Endpoint:
        """Create an endpoint; its first `min_replicas` replicas start as jobs."""
        return Endpoint.model_validate(self._core.post(f"/projects/{project}/endpoints", draft))

    def list(self, project: str) -> list[Endpoint]:
        """The project's endpoints with their replicas."""
        return self._core.items(Endpoint, f"/projects/{project}/endpoints")

    def get(self, project: str, name: str) -> Endpoint:
        """One endpoint, its replicas and the model version that answers."""
        return Endpoint.model_validate(self._core.get(f"/projects/{project}/endpoints/{name}"))

    def update(self, project: str, name: str, change: EndpointChange) -> Endpoint:
        """Change an endpoint (model version, replica bounds, idle time)."""
        return Endpoint.model_validate(
            self._core.send("PATCH", f"/projects/{project}/endpoints/{name}", change)
        )

    def delete(self, project: str, name: str) -> None:
        """Delete an endpoint: its replicas drain and end."""
        self._core.request("DELETE", f"/projects/{project}/endpoints/{name}")
