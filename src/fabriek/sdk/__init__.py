"""The Python client of Fabriek's HTTP API: `fabriek.sdk.client.FabriekClient(url, token)`,
with a sub-client per capability (`client.jobs`, `client.datasets`, `client.support`, ...),
each in a module of its own here on one shared HTTP core (`fabriek.sdk.core`).

This package's own namespace holds only the errors, which import nothing: a caller that
only catches them (the CLI's entry point) does not pay for httpx and Pydantic.
"""

from fabriek.sdk.errors import ApiError, ApiUnreachable, TransferFailed

__all__ = ["ApiError", "ApiUnreachable", "TransferFailed"]
