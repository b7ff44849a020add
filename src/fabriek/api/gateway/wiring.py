"""Building the gateway on the application's shared parts (store, engines, caches)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fabriek.api.context import AppContext
from fabriek.api.gateway.asgi import Gateway
from fabriek.domain.errors import ServiceUnavailable
from fabriek.domain.gateway import KeyFacts, ProjectRefusal
from fabriek.domain.roles import Principal
from fabriek.services.endpoints import keys, listing, routing
from fabriek.services.endpoints.allocation import project_refusal
from fabriek.services.endpoints.metering import Meter
from fabriek.services.endpoints.routing import EndpointRoute


def build_gateway(ctx: AppContext) -> Gateway:
    """The `/v1` application on this context (its store, its engines, its token cache)."""

    def resolve(endpoint: int | str, project_id: int | None) -> EndpointRoute:
        if ctx.dispatcher is None:
            raise ServiceUnavailable("the control plane runs no engines here")
        with ctx.sessions() as session:
            return routing.routable(
                session, endpoint, ctx.dispatcher.engine, ctx.settings.state_dir, project_id
            )

    def wake(endpoint_id: int) -> None:
        with ctx.sessions() as session:
            routing.wake(session, endpoint_id, datetime.now(UTC), ctx.images)

    def key_facts(presented: str) -> KeyFacts | None:
        with ctx.sessions() as session:
            return keys.key_facts(session, presented, datetime.now(UTC))

    def principal(presented: str) -> Principal:
        with ctx.sessions() as session:
            return ctx.principals.authenticate(session, presented, datetime.now(UTC))

    def models(key: KeyFacts | None, who: Principal | None) -> list[dict[str, Any]]:
        with ctx.sessions() as session:
            return listing.callable_models(session, key, who)

    def flush(meter: Meter) -> int:
        return meter.flush(ctx.sessions)

    def refusal(project_id: int) -> ProjectRefusal | None:
        with ctx.sessions() as session:
            return project_refusal(session, project_id, datetime.now(UTC), ctx.access)

    return Gateway(resolve, wake, key_facts, principal, models, flush, refusal)
