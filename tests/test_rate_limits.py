"""Rate limits (issue 20, point 7): the rule's properties, and through the HTTP API of a
server with small limits: a token past its rate, a flood of submissions, failed sign-ins
(token guessing) and a flooding address each get 429 with `Retry-After`, while the
factory's other users are served."""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fabriek.api.rate_limits import CallerTable
from fabriek.domain.jobs import JobDraft
from fabriek.domain.rate_limits import SLACK_S, Rate, admit, retry_after_header
from fabriek.sdk.client import FabriekClient
from fabriek.services.demo.seed import demo_token
from fabriek.settings import Settings
from tests.conftest import problem_of
from tests.servers import LiveServer, live_server, prepare, throwaway_database

# -- the rule ---------------------------------------------------------------------------------

rates = st.builds(
    Rate,
    per_s=st.floats(min_value=0.01, max_value=1000, allow_nan=False),
    burst=st.integers(min_value=1, max_value=50),
)
arrivals = st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=200).map(
    sorted
)


def admitted_times(rate: Rate, times: list[float]) -> list[float]:
    tat: float | None = None
    admitted = []
    for now in times:
        verdict = admit(tat, now, rate)
        if verdict.admitted:
            admitted.append(now)
            tat = verdict.tat
    return admitted


@given(rates, arrivals)
def test_no_window_admits_more_than_the_burst_and_the_rate(rate: Rate, times: list[float]) -> None:
    admitted = admitted_times(rate, times)
    for i, start in enumerate(admitted):
        for j in range(i, len(admitted)):
            span = admitted[j] - start
            # GCRA's bound: burst requests at once, one more each interval after.
            assert j - i + 1 <= rate.burst + (span + SLACK_S) * rate.per_s + 1e-6


@given(rates, arrivals)
def test_a_refused_request_is_admitted_after_its_retry_after(
    rate: Rate, times: list[float]
) -> None:
    tat: float | None = None
    for now in times:
        verdict = admit(tat, now, rate)
        if not verdict.admitted:
            assert verdict.retry_after_s > 0
            later = admit(tat, now + verdict.retry_after_s + 1e-9 * (1 + now), rate)
            assert later.admitted
            # ... and not a moment much earlier.
            if verdict.retry_after_s > 1e-3:
                assert not admit(tat, now + verdict.retry_after_s / 2, rate).admitted
        else:
            tat = verdict.tat


@given(rates, st.integers(min_value=1, max_value=100), st.floats(min_value=0, max_value=1e6))
def test_callers_at_the_sustained_rate_are_never_refused(rate: Rate, n: int, t0: float) -> None:
    times = [t0 + k * rate.interval_s * (1 + 1e-9) for k in range(n)]
    assert admitted_times(rate, times) == times


@given(rates, st.floats(min_value=0, max_value=1e6))
def test_a_quiet_caller_gets_exactly_its_burst_at_once(rate: Rate, now: float) -> None:
    assert len(admitted_times(rate, [now] * (rate.burst + 5))) == rate.burst


@given(st.floats(min_value=0, max_value=1e5, allow_nan=False))
def test_retry_after_is_whole_seconds_never_less_than_the_wait(seconds: float) -> None:
    header = int(retry_after_header(seconds))
    assert header >= 1 and header >= seconds and header < max(1, seconds) + 1


def test_a_table_of_callers_stays_bounded() -> None:
    table = CallerTable(Rate(per_s=1.0, burst=5), max_callers=100)
    for i in range(5000):
        assert table.admit(f"caller-{i}", now=float(i) / 1000) is None
    assert len(table) <= 100
    # A caller over its limit is remembered while it is: its refusal holds.
    for _ in range(5):
        table.admit("flood", now=10.0)
    assert table.admit("flood", now=10.0) is not None


# -- through the API --------------------------------------------------------------------------

OFF: dict[str, Any] = {
    "rate_limit_token_per_s": 0,
    "rate_limit_token_writes_per_s": 0,
    "rate_limit_address_per_s": 0,
    "rate_limit_failed_signins_per_min": 0,
}


@contextmanager
def limited(**limits: Any) -> Iterator[LiveServer]:
    """A factory of its own whose limits are OFF but for `limits`."""
    with tempfile.TemporaryDirectory() as tmp, throwaway_database("sqlite", Path(tmp)) as url:
        prepare(url)
        settings = Settings(
            database_url=url, state_dir=Path(tmp) / "state", **{**OFF, **limits}
        )  # fmt: skip
        with live_server(settings) as live:
            yield live


def as_(live: LiveServer, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=live.url, headers=headers, timeout=30)


def throttled(answer: httpx.Response, setting: str) -> float:
    """The 429 problem document naming `setting`; its Retry-After in seconds."""
    body = problem_of(answer, 429)
    assert setting in str(body["detail"]), body
    wait = int(answer.headers["retry-after"])
    assert wait >= 1
    return wait


def job(name: str) -> dict[str, Any]:
    return {"project": "dutch-llm", "name": name, "command": ["true"], "gpus": 1,
            "time_limit": "1h", "earliest_start": "2099-01-01T00:00:00Z"}  # fmt: skip


def test_a_token_past_its_rate_is_throttled_and_other_users_are_not() -> None:
    # Half a request a second after a burst of 10: the 11th, sent at once, is early.
    with (
        limited(rate_limit_token_per_s=0.5, rate_limit_token_burst=10) as live,
        as_(live, demo_token("maria").token) as maria,
        as_(live, demo_token("pieter").token) as pieter,
    ):
        served = [maria.get("/api/v1/whoami").status_code for _ in range(10)]
        assert served == [200] * 10
        refused = maria.get("/api/v1/whoami")
        wait = throttled(refused, "FABRIEK_RATE_LIMIT_TOKEN_PER_S")
        assert "30 a minute, 10 at once" in refused.json()["detail"]
        # Another user of the factory, from the same address, is served meanwhile.
        assert pieter.get("/api/v1/whoami").status_code == 200
        # Health checks and scrapes are never limited.
        assert maria.get("/healthz").status_code == 200
        time.sleep(wait)
        assert maria.get("/api/v1/whoami").status_code == 200
        metrics = maria.get("/metrics").text
        assert 'fabriek_http_requests_throttled_total{limit="token"} 1.0' in metrics
        assert 'status="429"' in metrics


def test_a_flood_of_submissions_is_throttled_and_none_is_half_written() -> None:
    with (
        limited(rate_limit_token_writes_per_s=0.1, rate_limit_token_writes_burst=3) as live,
        as_(live, demo_token("maria").token) as maria,
        as_(live, demo_token("pieter").token) as pieter,
    ):
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: maria.post("/api/v1/jobs", json=job(f"flood-{i}")),
                                    range(12)))  # fmt: skip
        codes = sorted(a.status_code for a in answers)
        assert codes == [201] * 3 + [429] * 9, codes
        for answer in answers:
            if answer.status_code == 429:
                throttled(answer, "FABRIEK_RATE_LIMIT_TOKEN_WRITES_PER_S")
        # Exactly the accepted ones exist: a refused submission left nothing behind.
        listed = maria.get("/api/v1/jobs", params={"limit": 100}).json()["items"]
        flood = sorted(j["id"] for j in listed if j["name"].startswith("flood-"))
        assert flood == sorted(a.json()["id"] for a in answers if a.status_code == 201)
        # Reads of the flooding token and another user's submissions go on.
        assert maria.get("/api/v1/jobs").status_code == 200
        assert pieter.post("/api/v1/jobs", json=job("colleague")).status_code == 201


def test_the_sdk_waits_out_a_rate_limit_instead_of_failing() -> None:
    with limited(rate_limit_token_writes_per_s=2, rate_limit_token_writes_burst=2) as live:
        with FabriekClient(live.url, demo_token("maria").token) as client:
            started = time.monotonic()
            made = [client.jobs.submit(JobDraft(**job(f"sdk-{i}"))) for i in range(5)]
        # Two at once, then one every half second: it waited, and nothing was refused.
        assert len({j.id for j in made}) == 5
        assert time.monotonic() - started >= 1.0


def test_guessed_tokens_are_throttled_by_address_and_working_tokens_are_not() -> None:
    with limited(rate_limit_failed_signins_per_min=1, rate_limit_failed_signins_burst=5) as live:
        maria_token = demo_token("maria").token
        with as_(live, maria_token) as maria, as_(live, None) as anonymous:
            assert maria.get("/api/v1/whoami").status_code == 200  # maria's token works
            # Asking without a token is no guess: never throttled.
            for _ in range(20):
                problem_of(anonymous.get("/api/v1/jobs"), 401)
            guesses = [f"fbk_{i:08d}_{'x' * 32}" for i in range(8)]
            answers = []
            for guess in guesses:
                with as_(live, guess) as guesser:
                    answers.append(guesser.get("/api/v1/whoami"))
            assert [a.status_code for a in answers] == [401] * 5 + [429] * 3
            wait = throttled(answers[-1], "FABRIEK_RATE_LIMIT_FAILED_SIGNINS_PER_MIN")
            assert 1 <= wait <= 60
            # Even a valid token is not checked when it has not been seen to work ...
            with as_(live, demo_token("pieter").token) as pieter:
                throttled(pieter.get("/api/v1/whoami"), "FAILED_SIGNINS")
            # ... while maria, whose token worked, goes on being served from that address.
            assert maria.get("/api/v1/whoami").json()["username"] == "maria"
            # The portal's sign-in form is throttled alike.
            form = anonymous.post("/signin", data={"token": guesses[0], "next": "/"})
            throttled(form, "FAILED_SIGNINS")


def test_wrong_tokens_on_the_portal_sign_in_count_as_failed_sign_ins() -> None:
    with (
        limited(rate_limit_failed_signins_per_min=1, rate_limit_failed_signins_burst=3) as live,
        as_(live, None) as browser,
    ):
        codes = [
            browser.post("/signin", data={"token": f"fbk_bad{i}_{'y' * 32}", "next": "/"})
            for i in range(4)
        ]
        assert [c.status_code for c in codes] == [401, 401, 401, 429]
        throttled(codes[-1], "FAILED_SIGNINS")


def test_an_address_past_its_rate_is_throttled_whatever_its_tokens() -> None:
    with limited(rate_limit_address_per_s=0.5, rate_limit_address_burst=10) as live:
        tokens = [demo_token(u).token for u in ("maria", "pieter", "mo")]
        clients = [as_(live, t) for t in [*tokens, None]]
        try:
            codes = [
                clients[i % 4].get("/api/v1/reference/gpu-types").status_code for i in range(10)
            ]
            assert 429 not in codes
            refused = clients[1].get("/api/v1/reference/gpu-types")
            wait = throttled(refused, "FABRIEK_RATE_LIMIT_ADDRESS_PER_S")
            assert wait == math.ceil(wait)
            assert clients[0].get("/readyz").status_code == 200
        finally:
            for c in clients:
                c.close()


@pytest.mark.parametrize("setting", ["rate_limit_token_per_s", "rate_limit_address_per_s"])
def test_a_negative_rate_is_refused_by_the_settings(setting: str) -> None:
    with pytest.raises(ValueError, match=setting):
        Settings.model_validate({setting: -1})


def test_the_default_limits_let_a_busy_user_and_a_few_typos_through() -> None:
    defaults = {
        name: field.default
        for name, field in Settings.model_fields.items()
        if name.startswith("rate_limit_")
    }
    with (
        limited(**defaults) as live,
        as_(live, demo_token("maria").token) as maria,
        as_(live, "fbk_typo0000_" + "z" * 32) as typo,
    ):
        # A portal page's worth of calls many times over, and a script's burst of jobs.
        assert all(maria.get("/api/v1/whoami").status_code == 200 for _ in range(300))
        assert all(
            maria.post("/api/v1/jobs", json=job(f"busy-{i}")).status_code == 201 for i in range(50)
        )
        # A person mistyping their token a few times is told so, not locked out.
        assert all(typo.get("/api/v1/whoami").status_code == 401 for _ in range(10))
