"""The API's contract is true (issue 20, point 6): schemathesis, the fuzzer for OpenAPI,
runs against /openapi.json with an admin's and a member's token, on SQLite and PostgreSQL,
and finds no server error, no answer the spec does not declare (status, media type,
schema, headers) and no `Allow` that lies on a 405.

The fuzzer creates, changes and suspends whatever its tokens may, so it gets a server and a
database of its own (nothing another test file sees). Bounded: a few examples per
operation and one worker per run; about a minute a run on an idle machine.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fabriek.services.demo.seed import demo_token
from fabriek.settings import Settings
from tests.conftest import BACKENDS
from tests.servers import LiveServer, live_server, postgres_unavailable, prepare, throwaway_database

# Its own group: with `--dist loadgroup` it gets a worker to itself (with the default
# `loadfile` it does already, being a file of its own).
pytestmark = pytest.mark.xdist_group("fuzz")

ST = Path(sys.executable).with_name("st")
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
        "unsupported_method",
        "allow_header_conformance",
    ]
)
EXCLUDED = {
    # Its body is an e-mail (message/rfc822), which the fuzzer cannot write.
    "/api/v1/support/inbound": "the fuzzer has no serialiser for message/rfc822",
}
EXAMPLES_PER_OPERATION = 5
RUN_TIMEOUT_S = 420


@pytest.fixture(scope="module", params=BACKENDS)
def fuzzed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A server of its own on a fresh demo factory."""
    if request.param == "postgresql" and (reason := postgres_unavailable()):
        pytest.skip(reason)
    with throwaway_database(request.param, tmp_path_factory.mktemp("fuzzdb")) as url:
        prepare(url)
        settings = Settings(
            database_url=url,
            state_dir=tmp_path_factory.mktemp("fuzzstate"),
            dispatch_interval_s=0.5,
        )
        with live_server(settings) as live:
            yield live


@pytest.mark.parametrize("user", ["admin", "maria"])
def test_the_fuzzer_finds_no_server_error_and_no_answer_off_the_spec(
    fuzzed: LiveServer, user: str, tmp_path: Path
) -> None:
    command = [
        str(ST),
        "run",
        f"{fuzzed.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {demo_token(user).token}",
        "--checks",
        CHECKS,
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--workers",
        "1",
        "--request-timeout",
        "30",
        # The same cases every run, so a failure is reproduced by running the test again.
        "--seed",
        "20",
        "--no-color",
        *[arg for path in EXCLUDED for arg in ("--exclude-path", path)],
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        cwd=tmp_path,
        check=False,
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report[-30_000:]
