"""Input checked once, at the edge, for every route: no value the store cannot take gets in.

`guard` is a dependency of the whole app (every router, the portal's too), run before a
route's own parameters and its caller are resolved:

- an integer path parameter outside 32 bits names nothing: 404, as any unknown id;
- an integer query parameter outside 32 bits, and a control character in any path or query
  value: 422 naming the parameter;
- in a JSON body, a control character other than tab, line feed and carriage return (NUL
  above all) and a number outside 64 bits: 422 naming the field (`command.2`).

`document` writes the same bounds into the OpenAPI spec, so the spec says what is checked.
"""

from __future__ import annotations

import json
from typing import Any, get_args

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import TypeAdapter, ValidationError
from starlette.requests import HTTPConnection

from fabriek.api import spec as openapi_spec
from fabriek.domain import inputs
from fabriek.domain.errors import FieldProblem, InvalidInput, NotFound

_INT = TypeAdapter(int)

# Per route: its integer path and query parameters, by the name they are sent as.
_IntParams = tuple[frozenset[str], frozenset[str]]
_int_params: dict[int, _IntParams] = {}


def _is_int(annotation: Any) -> bool:
    """An int, an optional int or a list of ints (never a bool)."""
    if annotation is int:
        return True
    return any(_is_int(arg) for arg in get_args(annotation))


def _walk(dependant: Dependant) -> _IntParams:
    path: set[str] = set()
    query: set[str] = set()
    todo = [dependant]
    while todo:
        current = todo.pop()
        path.update(f.alias for f in current.path_params if _is_int(f.field_info.annotation))
        query.update(f.alias for f in current.query_params if _is_int(f.field_info.annotation))
        todo.extend(current.dependencies)
    return frozenset(path), frozenset(query)


def _route_ints(route: object) -> _IntParams:
    if not isinstance(route, APIRoute):
        return frozenset(), frozenset()
    found = _int_params.get(id(route))
    if found is None:
        found = _int_params[id(route)] = _walk(route.dependant)
    return found


def _as_int(text: str) -> int | None:
    """The integer a parameter's text is read as by the route (None: not one; the route's
    own validation then answers 422)."""
    try:
        return _INT.validate_python(text)
    except ValidationError:
        return None


def _check_path(request: HTTPConnection, int_names: frozenset[str]) -> None:
    for name, value in request.path_params.items():
        text = str(value)
        if (why := inputs.line_problem(text)) is not None:
            raise InvalidInput.on(name, why)
        if name in int_names and (n := _as_int(text)) is not None and inputs.id_problem(n):
            # No object has such an id: answered as any unknown one is.
            raise NotFound(name.removesuffix("_id").replace("_", " "), n)


def _check_query(request: HTTPConnection, int_names: frozenset[str]) -> None:
    problems: list[FieldProblem] = []
    for name, value in request.query_params.multi_items():
        for text in (name, value):
            if (why := inputs.line_problem(text)) is not None:
                problems.append(FieldProblem(_printable(name), why))
        n = _as_int(value) if name in int_names else None
        if n is not None and (why := inputs.id_problem(n)) is not None:
            problems.append(FieldProblem(name, why))
    _raise(problems)


def _printable(name: str) -> str:
    return "".join(c if inputs.line_problem(c) is None else f"\\x{ord(c):02x}" for c in name)


def _raise(problems: list[FieldProblem]) -> None:
    if problems:
        detail = "; ".join(f"{p.field}: {p.message}" for p in problems[:10])
        raise InvalidInput(detail, problems[:100])


async def _check_body(request: Request) -> None:
    route = request.scope.get("route")
    # Only a body the route itself reads as JSON, which FastAPI has read already (a
    # streamed upload is never touched here).
    if not isinstance(route, APIRoute) or route.body_field is None:
        return
    if "json" not in request.headers.get("content-type", "application/json"):
        return
    raw = await request.body()
    if not raw:
        return
    try:
        parsed = json.loads(raw)
    except ValueError:
        return  # the route's own parsing answers 422 with the position
    _raise(list(inputs.body_problems(parsed)))


async def guard(connection: HTTPConnection) -> None:
    """Refuse, for any route, a value no route could take (see the module's docstring).
    WebSockets too (a proxied web app's, a notebook's kernels): a dependency that asked
    for a `Request` would fail every WebSocket route; theirs have a path and a query but
    no body."""
    path_ints, query_ints = _route_ints(connection.scope.get("route"))
    _check_path(connection, path_ints)
    _check_query(connection, query_ints)
    if isinstance(connection, Request):
        await _check_body(connection)


def document(app: FastAPI) -> None:
    """Write the edge's bounds and the problem documents every operation may answer into
    the app's OpenAPI spec (built once, on first request; see `api.spec`)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = build()
            openapi_spec.bound_parameters(spec)
            openapi_spec.bound_bodies(spec.get("components", {}).get("schemas", {}))
            openapi_spec.describe_errors(spec)
            openapi_spec.drop_framing_headers(spec)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods of the resource at this path (for `Allow` on a 405): the router tells
    only the first route it tried, and each method of a path is a route of its own. Where
    templates overlap (`/models/reports`, `/models/{name}`), the most literal one is the
    resource."""
    by_template: dict[str, set[str]] = {}
    for route in iter_route_contexts(app.routes):
        original = route.original_route
        if isinstance(original, APIRoute) and original.path_regex.match(path):
            by_template.setdefault(original.path, set()).update(original.methods or ())
    if not by_template:
        return []
    resource = min(by_template, key=lambda template: template.count("{"))
    return sorted(by_template[resource])
