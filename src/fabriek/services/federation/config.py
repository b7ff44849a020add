"""The federation's settings, checked once: a sync that cannot run says why in words.

The platform's client (`waldur-api-client`: some 3,000 generated modules, seconds to
import) is imported only when a platform is made: a server with the federation off, and
`fabriek federation status`, never load it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

from fabriek.domain.access.tracks import AccessConfig
from fabriek.domain.errors import InvalidInput
from fabriek.domain.federation import Components, UnknownPolicy
from fabriek.domain.geography import Province
from fabriek.domain.identity.organisations import OrganisationKind
from fabriek.services.federation.orders import OrderRules
from fabriek.settings import Settings

if TYPE_CHECKING:
    from fabriek.services.federation.platform import Platform


def order_rules(settings: Settings, access: AccessConfig) -> OrderRules:
    """The operator's rules for orders, from the settings."""
    try:
        kind = OrganisationKind(settings.federation_organisation_kind)
    except ValueError:
        known = ", ".join(OrganisationKind)
        raise InvalidInput(
            f"FABRIEK_FEDERATION_ORGANISATION_KIND {settings.federation_organisation_kind!r} "
            f"is not a kind of organisation; known: {known}"
        ) from None
    try:
        province = Province(settings.federation_organisation_province)
    except ValueError:
        known = ", ".join(Province)
        raise InvalidInput(
            "FABRIEK_FEDERATION_ORGANISATION_PROVINCE "
            f"{settings.federation_organisation_province!r} is not a province; known: {known}"
        ) from None
    return OrderRules(
        access=access,
        unknown=UnknownPolicy(settings.federation_unknown),
        organisation_kind=kind,
        organisation_province=province,
        actor=settings.federation_actor,
    )


def components(settings: Settings) -> Components:
    return Components(
        gpu_hours=settings.federation_gpu_hours_component,
        energy=settings.federation_energy_component,
    )


def check_platform(settings: Settings) -> None:
    """InvalidInput naming the platform's setting that is missing or malformed."""
    if not settings.federation_api_url:
        raise InvalidInput("set FABRIEK_FEDERATION_API_URL to the platform's address")
    if not settings.federation_api_token:
        raise InvalidInput("set FABRIEK_FEDERATION_API_TOKEN to the platform's token")
    try:
        UUID(settings.federation_offering_uuid)
    except ValueError:
        raise InvalidInput(
            "set FABRIEK_FEDERATION_OFFERING_UUID to the UUID of Fabriek's offering"
        ) from None


def platform(settings: Settings) -> Platform:
    """The platform's client, from the settings; InvalidInput naming what is missing."""
    check_platform(settings)
    from fabriek.services.federation.platform import Platform

    assert settings.federation_api_token is not None
    return Platform(
        settings.federation_api_url,
        settings.federation_api_token,
        settings.federation_offering_uuid,
    )
