"""What goes wrong talking to the API. Apart from the client so that a caller can catch them
without importing the HTTP stack (the CLI's entry point does, for every command)."""

from __future__ import annotations


class ApiError(Exception):
    """The API answered with a problem document."""

    def __init__(
        self, status: int, detail: str, errors: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []


class ApiUnreachable(Exception):
    """No answer from the server at all."""


class TransferFailed(Exception):
    """The bytes that arrived are not the ones the other side declared."""
