"""The SDK client of the signed-in caller, for the commands that talk to the server."""

from __future__ import annotations

from fabriek.cli import config
from fabriek.sdk.client import FabriekClient


def client(require_token: bool = True) -> FabriekClient:
    """The SDK client for the signed-in user (`fabriek login`, or FABRIEK_TOKEN and _URL)."""
    creds = config.load()
    if require_token and not creds.token:
        raise config.NotSignedIn(
            "not signed in: run `fabriek login` or set FABRIEK_TOKEN (and FABRIEK_URL)"
        )
    return FabriekClient(creds.url, creds.token)
