"""A project's images: its repositories in the factory's registry and their tags, read from
the registry's own API with a token Fabriek mints for itself."""

from __future__ import annotations

from sqlalchemy.orm import Session

from fabriek.domain.errors import ServiceUnavailable
from fabriek.domain.images import ProjectImage
from fabriek.domain.roles import Principal
from fabriek.services.identity.projects import get_project
from fabriek.services.images.registry_client import RegistryDown
from fabriek.services.images.service import ImageService


def project_images(
    session: Session, who: Principal, ref: str, images: ImageService | None
) -> list[ProjectImage]:
    """The images of a project the caller may see (NotFound otherwise); none when the
    factory runs no registry; ServiceUnavailable while the registry does not answer."""
    project = get_project(session, who, ref)
    if images is None:
        return []
    session.close()  # the registry is asked with no connection held
    try:
        found = images.project_images(project.name)
    except RegistryDown as exc:
        raise ServiceUnavailable(str(exc)) from exc
    return [ProjectImage(repository=r, tags=t) for r, t in sorted(found.items())]
