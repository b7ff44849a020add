"""Limits on what a request may carry (issue 20, point 3): a body past
FABRIEK_MAX_REQUEST_BYTES is 413 whether it declares its length or streams without one,
each field of a job has its size, and the routes that stream into storage keep theirs."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx

from fabriek.domain.jobs import (
    COMMAND_MAX_ARGS,
    COMMAND_MAX_CHARS,
    ENV_MAX_ENTRIES,
    ENV_VALUE_MAX_CHARS,
    SCRIPT_MAX_CHARS,
)
from tests.conftest import Client, problem_of

MIB = 1024 * 1024


def _ten_mib_job() -> bytes:
    """The tester's body: a job of valid shape, 10 MB of it in its arguments."""
    arg = "x" * 1100
    args = ",".join(f'"{arg}"' for _ in range(9000))
    return f'{{"command": ["echo", {args}]}}'.encode()


def test_a_ten_mib_job_is_413_and_not_stored(client: Client) -> None:
    maria = client("maria")
    before = maria.get("/api/v1/jobs", params={"limit": 1}).json()["total"]
    body = _ten_mib_job()
    answer = maria.post("/api/v1/jobs", content=body, headers={"Content-Type": "application/json"})
    problem = problem_of(answer, 413)
    assert "FABRIEK_MAX_REQUEST_BYTES" in str(problem["detail"])
    assert maria.get("/api/v1/jobs", params={"limit": 1}).json()["total"] == before


def test_a_streamed_body_without_its_length_is_counted(client: Client) -> None:
    """Chunked, no Content-Length: the bytes are counted as they come."""

    def chunks() -> Iterator[bytes]:
        body = _ten_mib_job()
        for at in range(0, len(body), 64 * 1024):
            yield body[at : at + 64 * 1024]

    answer = client("maria").post(
        "/api/v1/jobs", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in answer.request.headers
    problem_of(answer, 413)


def _field_of(answer: httpx.Response) -> list[str]:
    body = problem_of(answer, 422)
    errors = body["errors"]
    assert isinstance(errors, list)
    return [str(e["field"]) for e in errors]


def test_each_field_of_a_job_has_its_size(client: Client) -> None:
    maria = client("maria")
    for draft, field in [
        ({"command": ["x"] * (COMMAND_MAX_ARGS + 1)}, "command"),
        ({"command": ["x" * (COMMAND_MAX_CHARS + 1)]}, "command.0"),
        ({"command": ["x" * 40_000, "y" * 40_000]}, "command"),
        ({"script": "#!/bin/sh\n" + "#" * SCRIPT_MAX_CHARS}, "script"),
        (
            {"command": ["env"], "environment": {"A": "v" * (ENV_VALUE_MAX_CHARS + 1)}},
            "environment.A",
        ),
        (
            {"command": ["env"], "environment": {f"V{i}": "1" for i in range(ENV_MAX_ENTRIES + 1)}},
            "environment",
        ),
        ({"command": ["x"], "name": "n" * 201}, "name"),
    ]:
        assert _field_of(maria.post("/api/v1/jobs", json=draft)) == [field], field


def test_a_job_at_its_limits_is_taken(client: Client) -> None:
    maria = client("maria")
    made = maria.post(
        "/api/v1/jobs",
        json={"command": ["echo", "x" * (COMMAND_MAX_CHARS - 4)], "name": "n" * 200},
    )
    assert made.status_code == 201, made.text
    maria.post(f"/api/v1/jobs/{made.json()['id']}/cancel")


def test_streamed_uploads_keep_their_own_limits(client: Client, unique: str) -> None:
    """A dataset version larger than the request limit still goes up (its limit is the
    project's quota)."""
    pieter = client("pieter")
    made = pieter.post("/api/v1/datasets", json={"project": "dutch-llm", "name": unique})
    assert made.status_code == 201, made.text
    data = b"fabriek" * (2 * MIB // 7 + 1)
    assert len(data) > 2 * MIB
    up = pieter.post(
        f"/api/v1/datasets/dutch-llm/{unique}/versions",
        content=data,
        headers={"X-Content-SHA256": hashlib.sha256(data).hexdigest()},
    )
    assert up.status_code == 201, up.text
