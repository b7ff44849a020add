"""No input crashes the API (issue 20, point 2): every route, walked from the OpenAPI spec,
is sent ids past 32 and 64 bits and control characters in every parameter and body, on
SQLite and on PostgreSQL, and answers 404 or 422 naming the field, never 500."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from fabriek.api import edge
from fabriek.server.app import build_app
from tests.conftest import Client, problem_of
from tests.servers import LiveServer

HUGE = [2**63, 2**31]
NUL = "a\x00b"


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def _params(operation: dict[str, Any], where: str) -> list[dict[str, Any]]:
    return [p for p in operation.get("parameters", []) if p["in"] == where]


def _is_int(parameter: dict[str, Any]) -> bool:
    schema = parameter["schema"]
    types = [schema.get("type"), *(s.get("type") for s in schema.get("anyOf", []))]
    return "integer" in types or schema.get("items", {}).get("type") == "integer"


def _fill(path: str, operation: dict[str, Any], **values: object) -> str:
    """The path with each parameter set: an integer to 1, a string to a plausible name."""
    for p in _params(operation, "path"):
        value = values.get(p["name"], 1 if _is_int(p) else "demo")
        path = path.replace("{" + p["name"] + "}", str(value))
    return path


@pytest.fixture(scope="module")
def spec(server: LiveServer) -> dict[str, Any]:
    return dict(httpx.get(f"{server.url}/openapi.json", timeout=30).json())


def _fields(problem: dict[str, object]) -> list[str]:
    errors = problem["errors"]
    assert isinstance(errors, list)
    return [str(e["field"]) for e in errors]


def test_an_id_past_32_or_64_bits_is_404_on_every_route(
    client: Client, spec: dict[str, Any]
) -> None:
    admin = client("admin")
    tried = 0
    for method, path, operation in _operations(spec):
        for p in filter(_is_int, _params(operation, "path")):
            for n in HUGE:
                url = _fill(path, operation, **{p["name"]: n})
                body = problem_of(admin.request(method, url), 404)
                assert str(n) in str(body["detail"])
                tried += 1
    assert tried > 50  # jobs, proposals, tickets, allocations, ...


def test_an_integer_query_past_32_bits_is_422_naming_it(
    client: Client, spec: dict[str, Any]
) -> None:
    admin = client("admin")
    tried = 0
    for method, path, operation in _operations(spec):
        for p in filter(_is_int, _params(operation, "query")):
            for n in HUGE:
                url = _fill(path, operation)
                answer = admin.request(method, url, params={p["name"]: n})
                body = problem_of(answer, 422)
                assert p["name"] in str(body["detail"])
                tried += 1
    assert tried > 20  # offset on every listing, and the ids some filter by


def test_a_nul_in_any_path_or_query_value_is_422_naming_it(
    client: Client, spec: dict[str, Any]
) -> None:
    admin = client("admin")
    for method, path, operation in _operations(spec):
        for p in _params(operation, "path"):
            url = _fill(path, operation, **{p["name"]: "a%00b"})
            body = problem_of(admin.request(method, url), 422)
            assert p["name"] in str(body["detail"])
        # Declared or not, a query value with a NUL never reaches a route.
        names = [p["name"] for p in _params(operation, "query")] or ["anything"]
        for name in names:
            answer = admin.request(method, _fill(path, operation), params={name: NUL})
            body = problem_of(answer, 422)
            assert name in str(body["detail"]) and "NUL" in str(body["detail"])


def _string_fields(spec: dict[str, Any], operation: dict[str, Any]) -> list[str]:
    content = operation.get("requestBody", {}).get("content", {})
    ref = content.get("application/json", {}).get("schema", {}).get("$ref")
    if ref is None:
        return []
    schema = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return [
        name
        for name, prop in schema.get("properties", {}).items()
        if "string" in re.findall(r"'type': '(\w+)'", str(prop))
    ]


def test_a_nul_in_any_string_of_any_body_is_422_naming_it(
    client: Client, spec: dict[str, Any]
) -> None:
    admin = client("admin")
    tried = 0
    for method, path, operation in _operations(spec):
        for field in _string_fields(spec, operation):
            answer = admin.request(method, _fill(path, operation), json={field: NUL})
            body = problem_of(answer, 422)
            assert _fields(body) == [field]
            assert "NUL" in str(body["detail"])
            tried += 1
    assert tried > 50


def test_a_job_with_a_nul_anywhere_is_refused_and_not_stored(client: Client) -> None:
    """The tester's reproductions: a NUL in a job's name, script or argument was a 500 on
    PostgreSQL, and on SQLite an argument with one was stored and the job ended lost."""
    maria = client("maria")
    before = maria.get("/api/v1/jobs", params={"limit": 1}).json()["total"]
    for draft, field in [
        ({"name": NUL, "command": ["true"]}, "name"),
        ({"script": "#!/bin/sh\necho a\x00b\n"}, "script"),
        ({"command": ["echo", NUL]}, "command.1"),
        ({"command": ["env"], "environment": {"A\x00": "b"}}, "environment.A\\x00"),
        ({"command": ["env"], "environment": {"A": NUL}}, "environment.A"),
        ({"command": ["sleep", 2**64]}, "command.1"),
    ]:
        body = problem_of(maria.post("/api/v1/jobs", json=draft), 422)
        assert _fields(body) == [field], body
    queries: list[dict[str, str | int]] = [
        {"project": NUL},
        {"offset": 2**63},
        {"offset": 2**31},
        {"limit": 2**63},
    ]
    for query in queries:
        problem_of(maria.get("/api/v1/jobs", params=query), 422)
    problem_of(maria.get(f"/api/v1/jobs/{2**63}"), 404)
    problem_of(maria.get(f"/api/v1/jobs/{2**31}/logs", params={"offset": 2**63}), 404)
    assert maria.get("/api/v1/jobs", params={"limit": 1}).json()["total"] == before


def test_tabs_and_line_breaks_are_text_in_a_script_but_not_in_a_name(client: Client) -> None:
    maria = client("maria")
    ok = maria.post("/api/v1/jobs", json={"script": "#!/bin/sh\n\techo 'a\tb'\r\n"})
    assert ok.status_code == 201, ok.text
    maria.post(f"/api/v1/jobs/{ok.json()['id']}/cancel")
    body = problem_of(maria.post("/api/v1/jobs", json={"name": "a\nb", "command": ["x"]}), 422)
    assert _fields(body) == ["name"]


def test_every_route_of_the_app_is_guarded(server: LiveServer) -> None:
    """The guard is the app's own dependency, so no router (API or portal) can miss it."""
    app = build_app(server.settings)
    try:
        # As FastAPI serves them: each route with what its routers and the app add.
        routes = [
            r for r in iter_route_contexts(app.routes) if isinstance(r.original_route, APIRoute)
        ]
        assert len(routes) > 200  # the API's and the portal's
        for route in routes:
            first = route.dependant.dependencies[0]
            assert first.call is edge.guard, route.path
    finally:
        app.state.context.engine.dispose()


def test_the_spec_states_the_bounds_it_enforces(spec: dict[str, Any]) -> None:
    job = spec["paths"]["/api/v1/jobs/{job_id}"]["get"]["parameters"][0]["schema"]
    assert job["maximum"] == 2**31 - 1
    offset = next(
        p for p in spec["paths"]["/api/v1/jobs"]["get"]["parameters"] if p["name"] == "offset"
    )
    assert offset["schema"]["maximum"] == 2**31 - 1


def test_a_reference_of_odd_digits_names_nothing(client: Client, spec: dict[str, Any]) -> None:
    """`/projects/{ref}` takes an id or a name: `²` (a digit to str.isdigit, not to int) and
    digits past 32 bits were 500s; they are names that name nothing."""
    admin = client("admin")
    tried = 0
    for method, path, operation in _operations(spec):
        for p in _params(operation, "path"):
            if _is_int(p):
                continue
            for odd in ["²", str(2**31), str(2**63)]:
                answer = admin.request(method, _fill(path, operation, **{p["name"]: odd}))
                assert answer.status_code < 500, (method, path, odd, answer.text)
                tried += 1
    assert tried > 100


def test_an_id_in_a_body_past_32_bits_is_422_naming_it(client: Client) -> None:
    admin = client("admin")
    for url, body, field in [
        (
            "/api/v1/projects",
            {"name": "p", "title": "t", "organisation_id": 2**31},
            "organisation_id",
        ),
        ("/api/v1/models/reports", {"job_id": 2**63 - 2, "mfu": 0.5}, "job_id"),
    ]:
        answer = admin.post(url, json=body)
        assert field in _fields(problem_of(answer, 422)), answer.text
