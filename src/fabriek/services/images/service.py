"""Images for jobs: checked when a job is submitted, pinned and given a pull credential when
it is started.

At submission a name is refused when it is malformed or from a registry not allowed (422,
naming the setting), or when it is missing or another project's (404, the same answer for
both, so nothing leaks). Its digest is recorded when the factory's registry answers; when
the registry is down the job is accepted anyway and the digest is found when it starts.
At dispatch the job gets `host/repository@digest` and a credential that pulls only its
project's images; a registry that is down keeps the job waiting with that reason.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from fabriek.domain.errors import InvalidInput, NotFound
from fabriek.domain.images import (
    BadImageName,
    Grantee,
    ImageRef,
    Scope,
    allowed_actions,
    grant,
    is_allowed,
    parse_image,
)
from fabriek.engines.base import ContainerImage, EngineUnavailable
from fabriek.services.images.keys import SigningKey, load_signing_key
from fabriek.services.images.registry_client import ImageMissing, RegistryClient, RegistryDown
from fabriek.services.images.tokens import job_credential, registry_token
from fabriek.settings import Settings

# After a failed call, the registry is left alone this long (doubling up to the cap).
BACKOFF_S = (2.0, 60.0)


class ImageUnavailable(EngineUnavailable):
    """The job's image cannot be resolved now (the registry is down): the job waits."""


class ImageRefused(Exception):
    """The job's image can never be used (gone, another project's, not allowed)."""


@dataclass(frozen=True)
class CheckedImage:
    """A submitted name, parsed; its digest when the registry told it (None: not known)."""

    image: ImageRef
    digest: str | None


class ImageService:
    """The factory's registry as jobs see it (see the module)."""

    def __init__(
        self,
        own: str,
        key: SigningKey,
        upstreams: frozenset[str] = frozenset(),
        insecure: bool = False,
        lifetime_s: int = 300,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.own = own
        self.key = key
        self.upstreams = upstreams
        self.lifetime_s = lifetime_s
        scheme = "http" if insecure else "https"
        self.client = RegistryClient(f"{scheme}://{own}", self._own_token, transport)
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._backoff = BACKOFF_S[0]
        self._down_reason = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageService | None:
        """The service for the configured registry; None when the factory runs none."""
        if not settings.registry:
            return None
        upstreams = frozenset(
            u.strip() for u in settings.registry_upstreams.split(",") if u.strip()
        )
        return cls(
            settings.registry, load_signing_key(Path(settings.state_dir)), upstreams,
            settings.registry_insecure, settings.registry_token_s,
        )  # fmt: skip

    def _own_token(self, scopes: list[Scope]) -> str:
        # Fabriek's own calls: read-only, minted in-process, never leave this process.
        answer = registry_token(self.key, "fabriek", scopes, datetime.now(UTC), 60)
        return str(answer["token"])

    # -- health ------------------------------------------------------------------------------

    def _digest(self, image: ImageRef) -> str:
        """The registry's digest, with backoff while it is down (RegistryDown)."""
        with self._lock:
            if time.monotonic() < self._down_until:
                raise RegistryDown(self._down_reason)
        try:
            digest = self.client.digest(image.repository, image.manifest_ref)
        except RegistryDown as exc:
            with self._lock:
                self._down_reason = str(exc)
                self._down_until = time.monotonic() + self._backoff
                self._backoff = min(self._backoff * 2, BACKOFF_S[1])
            raise
        with self._lock:
            self._down_until, self._backoff = 0.0, BACKOFF_S[0]
        return digest

    # -- at submission -------------------------------------------------------------------------

    def parse(self, name: str) -> ImageRef:
        """The name, parsed and allowed; InvalidInput (422) naming what is wrong."""
        try:
            image = parse_image(name)
        except BadImageName as exc:
            raise InvalidInput.on("container_image", str(exc)) from exc
        if not is_allowed(image, self.own, self.upstreams):
            raise InvalidInput.on(
                "container_image",
                f"registry {image.registry!r} is not allowed: images come from the factory's "
                f"registry ({self.own}) or a registry the operator allows in "
                "FABRIEK_REGISTRY_UPSTREAMS",
            )
        return image

    def is_own(self, image: ImageRef) -> bool:
        return image.on(self.own).lower() == self.own.lower()

    def check(self, name: str, project: str) -> CheckedImage:
        """Check a submitted image for a job of `project` (see the module)."""
        image = self.parse(name)
        if not self.is_own(image):
            return CheckedImage(image, image.digest)  # an allowed upstream: by name
        if "pull" not in allowed_actions(Grantee(frozenset({project}), pull_only=True),
                                         image.repository):  # fmt: skip
            raise NotFound("image", name)  # another project's: told as if it did not exist
        try:
            return CheckedImage(image, self._digest(image))
        except ImageMissing:
            raise NotFound("image", name) from None
        except RegistryDown:
            return CheckedImage(image, image.digest)  # accepted; resolved when it starts

    # -- at dispatch ----------------------------------------------------------------------------

    def for_job(
        self, job_id: int, name: str, digest: str | None, project: str, now: datetime
    ) -> ContainerImage:
        """What the engine pulls for a job: pinned by digest, with a pull credential for the
        job's project. ImageUnavailable while the registry is down; ImageRefused for good."""
        try:
            image = self.parse(name)
        except InvalidInput as exc:
            raise ImageRefused(str(exc)) from exc
        if not self.is_own(image):
            return ContainerImage(image.reference(self.own), digest)
        grantee = Grantee(frozenset({project}), pull_only=True)
        if not grant(grantee, [Scope("repository", image.repository, frozenset({"pull"}))]):
            raise ImageRefused(f"ImageNotFound: {name} (not an image project {project} may use)")
        if digest is None:
            try:
                digest = self._digest(image)
            except ImageMissing:
                raise ImageRefused(f"ImageNotFound: {name}") from None
            except RegistryDown as exc:
                raise ImageUnavailable(f"waiting for the image registry: {exc}") from exc
        user, password = job_credential(self.key, job_id, project, now)
        return ContainerImage(image.pinned(self.own, digest), digest, user, password)

    # -- listing ------------------------------------------------------------------------------

    def project_images(self, project: str) -> dict[str, list[str]]:
        """A project's repositories and their tags (RegistryDown when it does not answer)."""
        prefix = f"{project}/"
        try:
            names = [r for r in self.client.repositories() if r.startswith(prefix)]
            return {r: self.client.tags(r) for r in names}
        except httpx.HTTPStatusError as exc:
            raise RegistryDown(f"the image registry answered {exc.response.status_code}") from exc
