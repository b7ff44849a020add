"""Datasets: register, push and pull versions (streamed, checked by SHA-256), grant and
revoke access, delete, and the organisation keys they are encrypted under."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fabriek.domain.datasets import (
    Dataset,
    DatasetDraft,
    DatasetGrant,
    DatasetVersion,
    KeyRotation,
    OrganisationKey,
)
from fabriek.sdk.core import TRANSFER_TIMEOUT, Listing, SubClient
from fabriek.sdk.transfer import Progress, file_blocks, file_sha256, receive


class DatasetsClient(SubClient):
    """`client.datasets`: the data jobs read, encrypted at rest."""

    def list(
        self,
        limit: int = 100,
        offset: int = 0,
        project: str | None = None,
        name: str | None = None,
    ) -> Listing[Dataset]:
        """Datasets of the caller's projects and those granted to them."""
        params = {"limit": limit, "offset": offset, "project": project, "name": name}
        return self._core.listing(Dataset, "/datasets", params)

    def get(self, project: str, name: str) -> Dataset:
        """One dataset with its versions (and, for its owners, its grants)."""
        return Dataset.model_validate(self._core.get(f"/datasets/{project}/{name}"))

    def register(self, draft: DatasetDraft) -> Dataset:
        """Register a dataset, without versions yet."""
        return Dataset.model_validate(self._core.post("/datasets", draft))

    def push(
        self,
        project: str,
        name: str,
        path: Path,
        sha256: str | None = None,
        progress: Progress | None = None,
    ) -> DatasetVersion:
        """Upload a file as the dataset's next version, streamed; the server keeps it only
        if its SHA-256 (computed here when not given) matches what arrived."""
        digest = sha256 or file_sha256(path)
        headers = {"X-Content-SHA256": digest, "Content-Length": str(path.stat().st_size)}
        response = self._core.request(
            "POST",
            f"/datasets/{project}/{name}/versions",
            content=file_blocks(path, progress),
            headers=headers,
            timeout=TRANSFER_TIMEOUT,
        )
        return DatasetVersion.model_validate(response.json())

    def pull(
        self,
        project: str,
        name: str,
        dest: Path,
        version: int | None = None,
        progress: Progress | None = None,
        started: Callable[[int], None] | None = None,
    ) -> tuple[int, str]:
        """Download a version (the latest by default) to `dest`, through a temporary file
        renamed only once the SHA-256 checks out; `started(size)` is told the size first.
        Returns the version number and SHA-256."""
        params: dict[str, Any] = {"version": version} if version is not None else {}
        path = f"/datasets/{project}/{name}/content"
        with self._core.stream(path, params, timeout=TRANSFER_TIMEOUT) as response:
            if started:
                started(int(response.headers.get("content-length", "0")))
            digest = receive(response, dest, progress)
            return int(response.headers.get("x-dataset-version", "0")), digest

    def grant(
        self, project: str, name: str, grantee: str, cross_organisation: bool = False
    ) -> DatasetGrant:
        """Let `grantee`'s members read the dataset."""
        body = {"project": grantee, "cross_organisation": cross_organisation}
        answer = self._core.post(f"/datasets/{project}/{name}/grants", body)
        return DatasetGrant.model_validate(answer)

    def revoke(self, project: str, name: str, grantee: str) -> None:
        """Take a grant back."""
        self._core.request("DELETE", f"/datasets/{project}/{name}/grants/{grantee}")

    def delete(self, project: str, name: str, version: int | None = None) -> None:
        """Delete the dataset (or one version): its keys are destroyed for good."""
        path = f"/datasets/{project}/{name}"
        self._core.request("DELETE", path if version is None else f"{path}/versions/{version}")

    def organisation_keys(self) -> builtins.list[OrganisationKey]:
        """The organisation keys one may see, by version."""
        return self._core.items(OrganisationKey, "/organisation-keys")

    def rotate_organisation_key(self, organisation_id: int) -> KeyRotation:
        """A new key version for the organisation; every data key is re-wrapped under it."""
        answer = self._core.post(f"/organisation-keys/{organisation_id}/rotate")
        return KeyRotation.model_validate(answer)
