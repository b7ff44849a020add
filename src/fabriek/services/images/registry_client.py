"""A thin client of the registry's HTTP API (Distribution v2): a manifest's digest, the
repositories and their tags. Every call carries a token Fabriek mints for itself in-process;
the registry's own answers are translated into three outcomes: found, missing, down."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from fabriek.domain.images import Scope

# Asked for all at once, so the registry answers with the digest the runtime will pull:
# multi-platform indexes and single manifests, in OCI's and Docker's media types.
MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
TIMEOUT_S = 10.0
CATALOG_PAGE = 1000


class RegistryDown(Exception):
    """The registry did not answer, or answered with a server error; try again later."""


class ImageMissing(Exception):
    """The registry has no such repository or tag."""


TokenFor = Callable[[list[Scope]], str]


class RegistryClient:
    """Calls on one registry, at `base_url` (http[s]://host[:port])."""

    def __init__(
        self, base_url: str, token_for: TokenFor, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token_for = token_for
        self.transport = transport

    def _get(
        self, method: str, path: str, scope: Scope, accept: str | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token_for([scope])}"}
        if accept:
            headers["Accept"] = accept
        try:
            with httpx.Client(timeout=TIMEOUT_S, transport=self.transport) as http:
                answer = http.request(method, f"{self.base_url}{path}", headers=headers)
        except httpx.HTTPError as exc:
            raise RegistryDown(
                f"the image registry at {self.base_url} does not answer: {exc}"
            ) from exc
        if answer.status_code >= 500:
            raise RegistryDown(
                f"the image registry at {self.base_url} answered {answer.status_code}"
            )
        return answer

    def digest(self, repository: str, reference: str) -> str:
        """The digest the registry serves for repository:reference (a tag or a digest)."""
        scope = Scope("repository", repository, frozenset({"pull"}))
        path = f"/v2/{repository}/manifests/{reference}"
        answer = self._get("HEAD", path, scope, MANIFEST_TYPES)
        if answer.status_code == 404:
            raise ImageMissing(f"{repository}:{reference}")
        digest = str(answer.headers.get("docker-content-digest") or "")
        if answer.status_code != 200 or not digest:
            raise RegistryDown(
                f"the image registry answered {answer.status_code} for {repository}:{reference}"
                " without a digest"
            )
        return digest

    def repositories(self) -> list[str]:
        """Every repository the registry holds (its catalogue, read a page at a time: the
        registry refuses pages over its `catalog.maxentries`, 1000 by default)."""
        scope = Scope("registry", "catalog", frozenset({"*"}))
        found: list[str] = []
        while True:
            last = f"&last={found[-1]}" if found else ""
            answer = self._get("GET", f"/v2/_catalog?n={CATALOG_PAGE}{last}", scope)
            answer.raise_for_status()
            page = list(answer.json().get("repositories") or [])
            found.extend(page)
            if len(page) < CATALOG_PAGE or "link" not in answer.headers:
                return found

    def tags(self, repository: str) -> list[str]:
        """The tags of one repository (none when it does not exist)."""
        scope = Scope("repository", repository, frozenset({"pull"}))
        answer = self._get("GET", f"/v2/{repository}/tags/list", scope)
        if answer.status_code == 404:
            return []
        answer.raise_for_status()
        return sorted(answer.json().get("tags") or [])
