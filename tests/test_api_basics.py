"""Health, readiness, metrics, OpenAPI and the shape of errors, over real HTTP."""

from __future__ import annotations

from tests.conftest import Client, problem_of


def test_health_and_readiness_need_no_token(client: Client) -> None:
    anon = client()
    assert anon.get("/healthz").json()["status"] == "ok"
    ready = anon.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["database"] == "ok"


def test_openapi_lists_the_versioned_routes(client: Client) -> None:
    spec = client().get("/openapi.json").json()
    paths = spec["paths"]
    for path in ["/api/v1/sites", "/api/v1/projects/{ref}/members", "/api/v1/tokens"]:
        assert path in paths
    assert all(p.startswith("/api/v1") or p in {"/healthz", "/readyz", "/metrics"} for p in paths)


def test_metrics_count_requests_by_route(client: Client) -> None:
    admin = client("admin")
    for _ in range(3):
        admin.get("/api/v1/projects")
    problem_of(client().get("/metrics"), 401)
    text = admin.get("/metrics").text
    line = next(
        ln
        for ln in text.splitlines()
        if ln.startswith("fabriek_http_requests_total")
        and 'route="/api/v1/projects"' in ln
        and 'status="200"' in ln
    )
    assert float(line.rsplit(" ", 1)[1]) >= 3
    assert "fabriek_http_request_duration_seconds_bucket" in text


def test_every_api_route_but_health_needs_a_token(client: Client) -> None:
    anon = client()
    for path in [
        "/api/v1/whoami",
        "/api/v1/sites",
        "/api/v1/sites/amsterdam",
        "/api/v1/organisations",
        "/api/v1/users",
        "/api/v1/projects",
        "/api/v1/tokens",
        "/api/v1/reference/gpu-types",
        "/api/v1/reference/hubs",
        "/api/v1/reference/provinces",
    ]:
        body = problem_of(anon.get(path), 401)
        assert "Bearer" in str(body["detail"])


def test_malformed_and_wrong_tokens_are_401_with_reasons(client: Client) -> None:
    assert "malformed" in str(
        problem_of(client(token="nonsense").get("/api/v1/whoami"), 401)["detail"]
    )
    wrong = "fbk_000000000000_" + "A" * 43
    assert "not valid" in str(problem_of(client(token=wrong).get("/api/v1/whoami"), 401)["detail"])
    basic = client().get("/api/v1/whoami", headers={"Authorization": "Basic abc"})
    problem_of(basic, 401)


def test_unknown_route_and_method_are_problems(client: Client) -> None:
    admin = client("admin")
    assert "/api/v1" in str(problem_of(admin.get("/api/v2/sites"), 404)["detail"])
    problem_of(admin.put("/api/v1/sites"), 405)


def test_reference_data(client: Client) -> None:
    c = client("maria")
    gpus = {g["code"]: g for g in c.get("/api/v1/reference/gpu-types").json()}
    assert {"h100", "h200", "a100", "l40s", "mi300x"} <= set(gpus)
    assert gpus["h100"]["memory_gb"] == 80
    assert len(c.get("/api/v1/reference/provinces").json()) == 12
    hubs = c.get("/api/v1/reference/hubs").json()
    assert len(hubs) == 7
    served = [p for h in hubs for p in h["provinces"]]
    assert sorted(served) == sorted(c.get("/api/v1/reference/provinces").json())
