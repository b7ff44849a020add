"""The Python client of Fabriek's HTTP API."""

from fabriek.sdk.client import ApiError, ApiUnreachable, FabriekClient, Listing

__all__ = ["ApiError", "ApiUnreachable", "FabriekClient", "Listing"]
