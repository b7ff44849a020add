"""StandInPlatform: a stand-in for the EuroHPC federation platform (Waldur's marketplace),
which cannot run here. It serves the paths Fabriek's site calls, with the payloads built
and read by the platform's own client models (`waldur-api-client`, generated from the
platform's OpenAPI description): what it answers is what the schema says the platform
answers, and a request body off the schema is refused as the platform would (400).

It keeps orders, resources' teams and component usages in memory, moves an order through
the states the platform does (pending-provider -> executing -> done | erred), keeps one
usage figure per resource, component and month (a second set_usage replaces it, as the
platform's does), and can be told to fail the next call of a kind, to test recovery.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID, uuid4

import uvicorn
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from waldur_api_client.models.component_usage_create_request import ComponentUsageCreateRequest
from waldur_api_client.models.order_details import OrderDetails
from waldur_api_client.models.order_details_attributes import OrderDetailsAttributes
from waldur_api_client.models.order_details_limits import OrderDetailsLimits
from waldur_api_client.models.order_error_details_request import OrderErrorDetailsRequest
from waldur_api_client.models.order_info_response import OrderInfoResponse
from waldur_api_client.models.order_state import OrderState
from waldur_api_client.models.project_user import ProjectUser
from waldur_api_client.models.request_types import RequestTypes

from tests.servers import free_port

TOKEN = "standin-service-provider-token"


@dataclass
class Member:
    username: str
    full_name: str
    email: str
    role: str = "PROJECT.MEMBER"


@dataclass
class StandInPlatform:
    """The platform's state, as a test sets it up and reads it back."""

    offering_uuid: UUID = field(default_factory=uuid4)
    orders: dict[UUID, OrderDetails] = field(default_factory=dict)
    teams: dict[UUID, list[Member]] = field(default_factory=dict)
    # (resource, component type, first day of the month) -> amount, as the platform keeps it
    usages: dict[tuple[UUID, str, date], str] = field(default_factory=dict)
    # every set_usage call received, in order (a figure sent twice is seen twice here)
    usage_calls: list[dict[str, Any]] = field(default_factory=list)
    failures: dict[str, list[int]] = field(default_factory=dict)
    url: str = ""

    def order(
        self,
        kind: RequestTypes = RequestTypes.CREATE,
        *,
        resource: UUID | None = None,
        resource_name: str = "llm-nl",
        customer: str = "TU Delft",
        project: str = "Dutch LLM pretraining",
        creator: tuple[str, str, str] = ("anna@myaccessid.org", "Anna de Vries", "anna@tudelft.nl"),
        gpu_hours: float | None = 1000,
        access_mode: str | None = "Fast Lane",
        end_date: date | None = date(2027, 6, 30),
        team: list[Member] | None = None,
        approved_at: datetime | None = None,
    ) -> UUID:
        """Place an order on Fabriek's offering, as the platform does once a call's
        allocation is approved; its UUID."""
        uuid = uuid4()
        resource = resource or uuid4()
        attributes = OrderDetailsAttributes()
        if access_mode is not None:
            attributes["access_mode"] = access_mode
        limits = OrderDetailsLimits()
        if gpu_hours is not None:
            limits["gpu_hours"] = gpu_hours
        self.orders[uuid] = OrderDetails(
            uuid=uuid,
            type_=kind,
            state=OrderState.PENDING_PROVIDER,
            offering_uuid=self.offering_uuid,
            marketplace_resource_uuid=resource,
            resource_name=resource_name,
            customer_name=customer,
            customer_uuid=uuid4(),
            project_name=project,
            project_uuid=uuid4(),
            project_description="Pretraining a Dutch language model",
            created_by_username=creator[0],
            created_by_full_name=creator[1],
            created_by_email=creator[2],
            attributes=attributes,
            limits=limits,
            resource_end_date=end_date,
            created=datetime.now(UTC),
            # The consumer's approval (the platform's decision on the allocation).
            consumer_reviewed_at=approved_at,
        )
        if team is not None:
            self.teams[resource] = team
        elif resource not in self.teams:
            self.teams[resource] = [Member(creator[0], creator[1], creator[2], "PROJECT.MANAGER")]
        return uuid

    def state(self, order: UUID) -> str:
        return str(self.orders[order].state.value)  # type: ignore[union-attr]

    def error(self, order: UUID) -> str:
        return str(self.orders[order].error_message)

    def resource_of(self, order: UUID) -> UUID:
        return self.orders[order].marketplace_resource_uuid  # type: ignore[return-value]

    def fail_next(self, call: str, status: int, times: int = 1) -> None:
        """The next `times` calls of this kind answer `status` (and change nothing)."""
        self.failures.setdefault(call, []).extend([status] * times)

    def usage(self, resource: UUID, component: str, month: date) -> float | None:
        found = self.usages.get((resource, component, month))
        return float(found) if found is not None else None


def _failing(platform: StandInPlatform, call: str) -> None:
    queued = platform.failures.get(call)
    if queued:
        raise HTTPException(queued.pop(0), f"stand-in: {call} fails as the test asked")


def standin_app(platform: StandInPlatform) -> FastAPI:
    """The platform's paths a site uses, as its OpenAPI description gives them."""
    app = FastAPI()

    @app.middleware("http")
    async def token_only(request: Request, call_next: Any) -> Response:
        if request.headers.get("authorization") != f"Token {TOKEN}":
            return JSONResponse({"detail": "Invalid token."}, status_code=401)
        response: Response = await call_next(request)
        return response

    def _order(uuid: UUID) -> OrderDetails:
        found = platform.orders.get(uuid)
        if found is None:
            raise HTTPException(404, "Not found.")
        return found

    @app.get("/api/marketplace-orders/")
    def list_orders(
        offering_uuid: UUID | None = None,
        state: list[str] = Query(default=[]),
        page: int = 1,
        page_size: int = 10,
    ) -> JSONResponse:
        _failing(platform, "orders_list")
        found = [
            o.to_dict()
            for o in platform.orders.values()
            if (offering_uuid is None or o.offering_uuid == offering_uuid)
            and (not state or o.state.value in state)  # type: ignore[union-attr]
        ]
        chunk = found[(page - 1) * page_size : page * page_size]
        headers = {"X-Result-Count": str(len(found))}
        if page * page_size < len(found):
            headers["Link"] = (
                f'<{platform.url}/api/marketplace-orders/?page={page + 1}>; rel="next"'
            )
        return JSONResponse(chunk, headers=headers)

    @app.get("/api/marketplace-orders/{uuid}/")
    def retrieve_order(uuid: UUID) -> dict[str, Any]:
        return _order(uuid).to_dict()

    @app.post("/api/marketplace-orders/{uuid}/approve_by_provider/")
    async def approve(uuid: UUID, request: Request) -> dict[str, Any]:
        _failing(platform, "approve_by_provider")
        order = _order(uuid)
        if order.state != OrderState.PENDING_PROVIDER:
            raise HTTPException(409, f"Order is in {order.state} state.")
        order.state = OrderState.EXECUTING
        return OrderInfoResponse(detail="Order has been approved.").to_dict()

    @app.post("/api/marketplace-orders/{uuid}/set_state_done/")
    def set_done(uuid: UUID) -> Response:
        _failing(platform, "set_state_done")
        order = _order(uuid)
        if order.state != OrderState.EXECUTING:
            raise HTTPException(400, f"Order is in {order.state} state.")
        order.state = OrderState.DONE
        order.completed_at = datetime.now(UTC)
        return Response(status_code=200)

    @app.post("/api/marketplace-orders/{uuid}/set_state_erred/")
    async def set_erred(uuid: UUID, request: Request) -> Response:
        _failing(platform, "set_state_erred")
        try:
            body = OrderErrorDetailsRequest.from_dict(await request.json())
        except (KeyError, TypeError, ValueError) as error:
            raise HTTPException(400, f"bad body: {error}") from None
        order = _order(uuid)
        if order.state not in (OrderState.EXECUTING, OrderState.PENDING_PROVIDER):
            raise HTTPException(400, f"Order is in {order.state} state.")
        order.state = OrderState.ERRED
        order.error_message = body.error_message
        return Response(status_code=200)

    @app.get("/api/marketplace-provider-resources/{uuid}/team/")
    def team(uuid: UUID) -> list[dict[str, Any]]:
        _failing(platform, "team")
        if uuid not in platform.teams:
            raise HTTPException(404, "Not found.")
        return [
            ProjectUser(
                url=f"{platform.url}/api/users/{m.username}/",
                uuid=uuid4(),
                username=m.username,
                full_name=m.full_name,
                role=m.role,
                expiration_time=None,
                offering_user_username=None,
                offering_user_state=None,
                email=m.email,
            ).to_dict()
            for m in platform.teams[uuid]
        ]

    @app.post("/api/marketplace-component-usages/set_usage/")
    async def set_usage(request: Request) -> Response:
        _failing(platform, "set_usage")
        raw = await request.json()
        try:
            body = ComponentUsageCreateRequest.from_dict(raw)
        except (KeyError, TypeError, ValueError) as error:
            raise HTTPException(400, f"bad body: {error}") from None
        resource = body.resource
        when = body.date
        if not isinstance(resource, UUID) or not isinstance(when, datetime):
            raise HTTPException(400, "resource and date are required")
        if not any(uuid == resource for uuid in platform.teams):
            raise HTTPException(400, "Resource is not found.")
        month = date(when.year, when.month, 1)
        platform.usage_calls.append(raw)
        for item in body.usages:
            float(item.amount)  # a decimal, as the schema says
            platform.usages[(resource, item.type_, month)] = item.amount
        return Response(status_code=201)

    return app


@contextmanager
def running_platform() -> Iterator[StandInPlatform]:
    """The stand-in served by uvicorn in a thread on a free loopback port."""
    platform = StandInPlatform()
    port = free_port()
    platform.url = f"http://127.0.0.1:{port}"
    config = uvicorn.Config(standin_app(platform), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the stand-in platform did not start")
        time.sleep(0.02)
    try:
        yield platform
    finally:
        server.should_exit = True
        thread.join(timeout=10)
