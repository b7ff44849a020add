"""The federation platform's API, through its own published client (`waldur-api-client`,
generated from the platform's OpenAPI description), called as Waldur's site agent calls it.

Only what a site needs: the offering's orders (list, approve, done, erred), a resource's
team, and usage per component and month. Every failure is one of two errors: the
platform cannot be reached or answered 5xx (`PlatformUnavailable`: try again later), or it
refused the call (`PlatformRefused`, with what it said).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import httpx
from waldur_api_client.api.marketplace_component_usages import (
    marketplace_component_usages_set_usage,
)
from waldur_api_client.api.marketplace_orders import (
    marketplace_orders_approve_by_provider,
    marketplace_orders_list,
    marketplace_orders_retrieve,
    marketplace_orders_set_state_done,
    marketplace_orders_set_state_erred,
)
from waldur_api_client.api.marketplace_provider_resources import (
    marketplace_provider_resources_team_list,
)
from waldur_api_client.client import AuthenticatedClient
from waldur_api_client.errors import UnexpectedStatus
from waldur_api_client.models.component_usage_create_request import (
    ComponentUsageCreateRequest,
)
from waldur_api_client.models.component_usage_item_request import ComponentUsageItemRequest
from waldur_api_client.models.order_approve_by_provider_request import (
    OrderApproveByProviderRequest,
)
from waldur_api_client.models.order_details import OrderDetails
from waldur_api_client.models.order_error_details_request import OrderErrorDetailsRequest
from waldur_api_client.models.order_state import OrderState
from waldur_api_client.models.request_types import RequestTypes
from waldur_api_client.types import Unset

from fabriek.domain.federation import OrderKind, Period, Person, PlatformOrder

# The states in which an order waits for the site (the site agent polls these two).
OPEN_STATES = (OrderState.PENDING_PROVIDER.value, OrderState.EXECUTING.value)


class PlatformUnavailable(Exception):
    """The platform could not be reached, or failed (5xx): nothing was decided."""


class PlatformRefused(Exception):
    """The platform answered the call with a 4xx: what it said is the message."""


@contextmanager
def _calling(what: str) -> Iterator[None]:
    try:
        yield
    except UnexpectedStatus as error:
        said = error.content.decode(errors="replace")[:300]
        if error.status_code >= 500:
            raise PlatformUnavailable(
                f"{what}: the platform answered {error.status_code}"
            ) from None
        raise PlatformRefused(
            f"{what}: the platform refused ({error.status_code}): {said}"
        ) from None
    except httpx.HTTPError as error:
        raise PlatformUnavailable(f"{what}: {type(error).__name__}: {error}") from None


def _set(value: Any) -> Any:
    return None if isinstance(value, Unset) else value


class Platform:
    """One offering of the platform, called as its service provider."""

    def __init__(
        self,
        api_url: str,
        token: str,
        offering_uuid: str,
        timeout_s: float = 30.0,
    ) -> None:
        self.offering_uuid = UUID(offering_uuid)
        self.client = AuthenticatedClient(
            base_url=api_url.rstrip("/"), token=token, timeout=httpx.Timeout(timeout_s)
        )

    def close(self) -> None:
        self.client.get_httpx_client().close()

    def open_orders(self) -> list[OrderDetails]:
        """The offering's orders waiting for the site, oldest first."""
        with _calling("listing the offering's orders"):
            orders = marketplace_orders_list.sync_all(
                client=self.client,
                offering_uuid=self.offering_uuid,
                state=[OrderState(s) for s in OPEN_STATES],
            )
        return sorted(
            orders, key=lambda o: _set(o.created) or dt.datetime.min.replace(tzinfo=dt.UTC)
        )

    def order_state(self, order_uuid: str) -> str:
        with _calling(f"reading order {order_uuid}"):
            order = marketplace_orders_retrieve.sync(client=self.client, uuid=UUID(order_uuid))
        return str(_set(order.state).value) if order is not None and _set(order.state) else ""

    def approve(self, order_uuid: str) -> None:
        with _calling(f"approving order {order_uuid}"):
            marketplace_orders_approve_by_provider.sync_detailed(
                client=self.client, uuid=UUID(order_uuid), body=OrderApproveByProviderRequest()
            )

    def done(self, order_uuid: str) -> None:
        with _calling(f"marking order {order_uuid} done"):
            marketplace_orders_set_state_done.sync_detailed(
                client=self.client, uuid=UUID(order_uuid)
            )

    def erred(self, order_uuid: str, reason: str) -> None:
        with _calling(f"marking order {order_uuid} erred"):
            marketplace_orders_set_state_erred.sync_detailed(
                client=self.client,
                uuid=UUID(order_uuid),
                body=OrderErrorDetailsRequest(error_message=reason, error_traceback=""),
            )

    def team(self, resource_uuid: str) -> list[Person]:
        """The people of a resource's project on the platform."""
        with _calling(f"reading the team of resource {resource_uuid}"):
            users = marketplace_provider_resources_team_list.sync(
                client=self.client, uuid=UUID(resource_uuid)
            )
        return [
            Person(
                username=u.username,
                full_name=u.full_name,
                email=_set(u.email) or "",
                role=u.role,
            )
            for u in users or []
        ]

    def set_usage(self, resource_uuid: str, period: Period, amounts: dict[str, float]) -> None:
        """A resource's usage of the month, per component: the platform keeps one figure per
        resource, component and month, and a second call for the month replaces the first."""
        body = ComponentUsageCreateRequest(
            usages=[
                ComponentUsageItemRequest(
                    type_=component,
                    amount=f"{amount:.3f}",
                    description=f"Fabriek: {component} in {period}",
                )
                for component, amount in sorted(amounts.items())
            ],
            resource=UUID(resource_uuid),
            date=period.start,
        )
        with _calling(f"reporting the usage of resource {resource_uuid} in {period}"):
            marketplace_component_usages_set_usage.sync_detailed(client=self.client, body=body)


def order_from(order: OrderDetails) -> PlatformOrder:
    """What Fabriek needs of a platform order. Its attributes hold the access mode and the
    end date (the offering's order form); its limits the GPU-hours (the offering's
    limit-based component)."""
    attributes: dict[str, Any] = _set(order.attributes).to_dict() if _set(order.attributes) else {}
    limits: dict[str, Any] = _set(order.limits).to_dict() if _set(order.limits) else {}
    ends = _set(order.resource_end_date) or attributes.get("end_date")
    ends_on = dt.date.fromisoformat(ends) if isinstance(ends, str) else ends
    creator = _set(order.created_by_username)
    pi = (
        Person(
            username=creator,
            full_name=_set(order.created_by_full_name) or creator,
            email=_set(order.created_by_email) or "",
            role="principal-investigator",
        )
        if creator
        else None
    )
    gpu_hours = limits.get("gpu_hours")
    # A restore brings a terminated resource back: for Fabriek, a create (found, updated).
    kind = {RequestTypes.UPDATE: OrderKind.UPDATE, RequestTypes.TERMINATE: OrderKind.TERMINATE}
    return PlatformOrder(
        uuid=str(_set(order.uuid)),
        kind=kind.get(_set(order.type_), OrderKind.CREATE),
        state=str(_set(order.state).value) if _set(order.state) else "",
        resource_uuid=str(_set(order.marketplace_resource_uuid) or ""),
        resource_name=_set(order.resource_name) or _set(order.project_name) or "project",
        organisation=_set(order.customer_name) or "",
        project_title=_set(order.project_name) or _set(order.resource_name) or "",
        project_description=_set(order.project_description) or "",
        principal_investigator=pi,
        gpu_hours=float(gpu_hours) if gpu_hours is not None else None,
        access_mode=attributes.get("access_mode"),
        ends_on=ends_on,
        decided_at=_utc(_set(order.consumer_reviewed_at) or _set(order.created)),
    )


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    """A time of the platform's, in UTC (one without a zone is taken as UTC)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=dt.UTC)


Factory = Callable[[], Platform]
