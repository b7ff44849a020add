"""The OpenAPI spec says what the API really answers (checked by schemathesis in the tests).

FastAPI writes each route's success and its 422 in its own shape; every error the API
answers is in fact a problem document (`api.problems`), from the edge (`api.edge`), the
body limit, the rate limits, the store being away, or the route. So every operation
declares those answers with the problem document's schema, and every integer states the
bounds the edge enforces.
"""

from __future__ import annotations

from typing import Any

from fabriek.domain import inputs

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An RFC 9457 problem document; `errors` names each field at fault.",
    "type": "object",
    "required": ["type", "title", "status", "detail", "instance"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,
}

_RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before trying again",
        "schema": {"type": "string"},
    }
}
# Answers any operation may give, and why.
ANY_OPERATION: dict[int, str] = {
    400: "The request could not be read.",
    401: "Not signed in: send 'Authorization: Bearer <token>'.",
    403: "Signed in, but your roles do not allow this.",
    404: "No such object, or one you may not see.",
    409: "The change conflicts with the current state.",
    413: "The request body is larger than the server takes.",
    422: "A value breaks a rule; `errors` names each field.",
    429: "Too many requests; wait `Retry-After` seconds.",
    503: "The store or a site does not answer now; try again after `Retry-After`.",
}
OPEN = {"/healthz", "/readyz", "/metrics"}


def _problem(description: str, status: int) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }
    if status in {429, 503}:
        answer["headers"] = _RETRY_AFTER
    return answer


def describe_errors(spec: dict[str, Any]) -> None:
    """Declare the problem documents on every operation (a route's own 422 is replaced: it
    is a problem document too)."""
    spec.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for path, item in spec.get("paths", {}).items():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            for status, description in ANY_OPERATION.items():
                if status == 401 and path in OPEN:
                    continue
                # A route's own answer stands (`/readyz`'s 503 is its health), but for the
                # 422 FastAPI declares in a shape the API never sends.
                if str(status) not in responses or status == 422:
                    responses[str(status)] = _problem(description, status)
            for status, answer in responses.items():
                if status.startswith(("4", "5")) and "content" not in answer:
                    answer["content"] = _problem(answer.get("description", ""), 400)["content"]
    schemas = spec["components"]["schemas"]
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)


def bound_parameters(spec: dict[str, Any]) -> None:
    """Integer path and query parameters: within 32 bits (the edge's rule)."""
    for item in spec.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                if parameter.get("in") not in {"path", "query"}:
                    continue
                schema = parameter.get("schema", {})
                for sub in [schema, *schema.get("anyOf", []), schema.get("items", {})]:
                    if sub.get("type") == "integer":
                        sub.setdefault("maximum", inputs.ID_MAX)
                        sub.setdefault("minimum", inputs.ID_MIN)


def bound_bodies(node: Any) -> None:
    """Integers of bodies: within 64 bits unless a field says less (the edge's rule)."""
    if isinstance(node, dict):
        if node.get("type") == "integer":
            node.setdefault("maximum", inputs.INT_MAX)
            node.setdefault("minimum", inputs.INT_MIN)
        for value in node.values():
            bound_bodies(value)
    elif isinstance(node, list):
        for value in node:
            bound_bodies(value)


def drop_framing_headers(spec: dict[str, Any]) -> None:
    """`Content-Length` is HTTP's own framing, which every client sets from the body it
    sends; routes read it (to refuse an upload past a quota early), but it is no parameter
    a caller chooses, and a malformed one is refused by the HTTP server before the API."""
    for item in spec.get("paths", {}).values():
        for operation in item.values():
            if isinstance(operation, dict) and "parameters" in operation:
                operation["parameters"] = [
                    p
                    for p in operation["parameters"]
                    if not (
                        p.get("in") == "header" and p.get("name", "").lower() == "content-length"
                    )
                ]
