"""Errors the domain and the services raise; the API maps each kind to one HTTP status."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldProblem:
    """What is wrong with one field of the input, in words a person can act on."""

    field: str
    message: str


@dataclass
class FabriekError(Exception):
    """Base of every error Fabriek raises on purpose; `code` is stable for clients."""

    detail: str
    code: str = "error"
    problems: list[FieldProblem] = field(default_factory=list)

    def __str__(self) -> str:
        return self.detail

    def extensions(self) -> dict[str, object]:
        """Extension members of its problem document (RFC 9457, 3.2), such as a link to
        what the caller must do first; none unless a kind of error has some."""
        return {}


class InvalidInput(FabriekError):
    """The request is well-formed but its values break a rule (HTTP 422)."""

    def __init__(self, detail: str, problems: list[FieldProblem] | None = None) -> None:
        super().__init__(detail, "invalid-input", problems or [])

    @classmethod
    def on(cls, field_name: str, message: str) -> InvalidInput:
        """One field is wrong: the detail names it."""
        return cls(f"{field_name}: {message}", [FieldProblem(field_name, message)])


class NotFound(FabriekError):
    """No such object, or one the caller may not see (HTTP 404: never leak existence)."""

    def __init__(self, what: str, key: object) -> None:
        super().__init__(f"{what} {key!s} does not exist or is not visible to you", "not-found")


class Conflict(FabriekError):
    """The write would break uniqueness or the current state (HTTP 409)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, "conflict")


class Unauthenticated(FabriekError):
    """No valid credentials (HTTP 401)."""

    def __init__(self, detail: str = "sign in: send 'Authorization: Bearer <token>'") -> None:
        super().__init__(detail, "unauthenticated")


class Forbidden(FabriekError):
    """Authenticated, but the caller's roles do not allow this (HTTP 403)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, "forbidden")


class TooLarge(FabriekError):
    """The request's content is larger than the caller may store (HTTP 413)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, "too-large")


class UnsupportedType(FabriekError):
    """The content is of a kind the caller may not send here (HTTP 415)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, "unsupported-type")


class ServiceUnavailable(FabriekError):
    """Something Fabriek depends on outside the store does not answer now, such as a site's
    Slurm accounting (HTTP 503): the detail says what, and the same call may work later."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, "unavailable")


class StoreError(FabriekError):
    """The store cannot be used: unreachable, misconfigured or behind in schema (HTTP 503).
    Raised by the store and the services; defined here so that the API maps it without
    reaching into the store."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, "store-unavailable")
