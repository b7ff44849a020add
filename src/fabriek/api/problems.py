"""Every error the API answers is an RFC 9457 problem document a person can act on."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from fabriek.api.edge import allowed_methods
from fabriek.domain.errors import (
    Conflict,
    FabriekError,
    Forbidden,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
    StoreError,
    TooLarge,
    Unauthenticated,
    UnsupportedType,
)

log = logging.getLogger("fabriek.api")

PROBLEM = "application/problem+json"

STATUS: dict[type[FabriekError], int] = {
    InvalidInput: 422,
    NotFound: 404,
    Conflict: 409,
    Unauthenticated: 401,
    Forbidden: 403,
    TooLarge: 413,
    UnsupportedType: 415,
    StoreError: 503,
    ServiceUnavailable: 503,
}
TITLES = {
    400: "Bad request",
    401: "Not signed in",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Invalid input",
    429: "Too many requests",
    500: "Internal error",
    503: "Unavailable",
}


def problem(
    status: int,
    detail: str,
    instance: str,
    code: str | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    extensions: dict[str, object] | None = None,
) -> JSONResponse:
    """A problem document response (`extensions`: members beside the standard ones)."""
    body: dict[str, Any] = {
        **(extensions or {}),
        "type": f"https://fabriek.eu/problems/{code or status}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _field(loc: tuple[int | str, ...]) -> str:
    # FastAPI locations start with where the value came from; people think in field names.
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:] or parts
    return ".".join(parts)


def install(app: FastAPI) -> None:
    """Map every kind of error to its problem document, in one place."""

    @app.exception_handler(FabriekError)
    async def _domain(request: Request, exc: FabriekError) -> JSONResponse:
        status = next((s for t, s in STATUS.items() if isinstance(exc, t)), 400)
        errors = [{"field": p.field, "message": p.message} for p in exc.problems]
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        detail = exc.detail
        withheld = getattr(request.state, "withheld_roles", ())
        if status == 403 and withheld:
            # The caller holds a role that might allow this, but their token's sign-in was
            # not sure enough for it: say so, or they would look for the wrong cause.
            detail += (
                f" (your token's sign-in did not meet the factory's minimum for: "
                f"{'; '.join(withheld)}; sign in again through an identity that provides "
                "it, and make a new token)"
            )
        return problem(status, detail, request.url.path, exc.code, errors, headers,
                       exc.extensions())  # fmt: skip

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for e in exc.errors():
            msg = str(e.get("msg", "invalid"))
            if e.get("type") == "extra_forbidden":
                msg = "unknown field; remove it (see the OpenAPI spec for the fields)"
            elif e.get("type") == "json_invalid":
                msg = "the body is not valid JSON"
            errors.append({"field": _field(tuple(e.get("loc", ()))), "message": msg})
        detail = "; ".join(f"{x['field']}: {x['message']}" for x in errors)
        return problem(422, detail, request.url.path, "invalid-input", errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.url.path}; the API is under /api/v1 (see /openapi.json)"
        headers = dict(exc.headers) if exc.headers else None
        if exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
            # Every method the path takes (RFC 9110, 15.5.6), not only the first route's.
            headers = {"Allow": ", ".join(allowed_methods(request.app, request.url.path))}
        return problem(exc.status_code, detail, request.url.path, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "an internal error occurred; it was logged", request.url.path)
