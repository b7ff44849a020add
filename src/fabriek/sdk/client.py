"""One client of the HTTP API, with a sub-client per capability: `client.jobs.submit(...)`,
`client.datasets.push(...)`, `client.support.open_ticket(...)`. Each returns domain values."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

import httpx

from fabriek.sdk.core import HttpCore, SubClient

if TYPE_CHECKING:
    from fabriek.sdk.access import AccessClient
    from fabriek.sdk.accounts import AccountsClient
    from fabriek.sdk.ai_act import AiActClient
    from fabriek.sdk.audit import AuditClient
    from fabriek.sdk.datasets import DatasetsClient
    from fabriek.sdk.endpoint_keys import EndpointKeysClient
    from fabriek.sdk.endpoints import EndpointsClient
    from fabriek.sdk.identity import IdentityClient
    from fabriek.sdk.jobs import JobsClient
    from fabriek.sdk.notifications import NotificationsClient
    from fabriek.sdk.sites import SitesClient
    from fabriek.sdk.ssh import SshClient
    from fabriek.sdk.support import SupportClient
    from fabriek.sdk.terms import TermsClient
    from fabriek.sdk.usage import UsageClient

S = TypeVar("S", bound=SubClient)


class Capability(Generic[S]):
    """A sub-client made on first use. Its module is imported then, not with the client:
    the domain values of all capabilities take some 0.2 s to import, and a command such as
    `fabriek jobs` needs one capability's (see bench/cli_startup.py)."""

    def __init__(self, module: str, name: str) -> None:
        self._where = (module, name)
        self._attribute = ""

    def __set_name__(self, owner: type, attribute: str) -> None:
        self._attribute = attribute

    @overload
    def __get__(self, client: None, owner: type) -> Capability[S]: ...

    @overload
    def __get__(self, client: FabriekClient, owner: type) -> S: ...

    def __get__(self, client: FabriekClient | None, owner: type) -> Capability[S] | S:
        if client is None:
            return self
        module, name = self._where
        made: S = getattr(importlib.import_module(module), name)(client.core)
        # Kept on the instance, which a non-data descriptor yields to from now on.
        client.__dict__[self._attribute] = made
        return made


class FabriekClient:
    """One client per server and token; close it, or use it as a context manager."""

    identity: Capability[IdentityClient] = Capability("fabriek.sdk.identity", "IdentityClient")
    sites: Capability[SitesClient] = Capability("fabriek.sdk.sites", "SitesClient")
    jobs: Capability[JobsClient] = Capability("fabriek.sdk.jobs", "JobsClient")
    access: Capability[AccessClient] = Capability("fabriek.sdk.access", "AccessClient")
    datasets: Capability[DatasetsClient] = Capability("fabriek.sdk.datasets", "DatasetsClient")
    ai_act: Capability[AiActClient] = Capability("fabriek.sdk.ai_act", "AiActClient")
    support: Capability[SupportClient] = Capability("fabriek.sdk.support", "SupportClient")
    usage: Capability[UsageClient] = Capability("fabriek.sdk.usage", "UsageClient")
    audit: Capability[AuditClient] = Capability("fabriek.sdk.audit", "AuditClient")
    notifications: Capability[NotificationsClient] = Capability(
        "fabriek.sdk.notifications", "NotificationsClient"
    )
    terms: Capability[TermsClient] = Capability("fabriek.sdk.terms", "TermsClient")
    ssh: Capability[SshClient] = Capability("fabriek.sdk.ssh", "SshClient")
    accounts: Capability[AccountsClient] = Capability("fabriek.sdk.accounts", "AccountsClient")
    endpoints: Capability[EndpointsClient] = Capability("fabriek.sdk.endpoints", "EndpointsClient")
    endpoint_keys: Capability[EndpointKeysClient] = Capability(
        "fabriek.sdk.endpoint_keys", "EndpointKeysClient"
    )

    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """`transport` replaces the network, e.g. with `httpx.MockTransport` in tests."""
        self.core = HttpCore(url, token, timeout, transport)
        self.url = self.core.url

    def __enter__(self) -> FabriekClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.core.close()

    @staticmethod
    def capabilities() -> dict[str, Capability[Any]]:
        """The sub-clients by attribute name (the route coverage test walks them)."""
        return {k: v for k, v in vars(FabriekClient).items() if isinstance(v, Capability)}
