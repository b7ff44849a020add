"""The notebook rules, pure: the draft a notebook is, the command filled in for it, and when
an idle one is stopped (property tests over times)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from fabriek.domain.jobs import JobDraft
from fabriek.domain.notebooks import (
    IdleCheck,
    command_of,
    default_name,
    idle_seconds,
    idle_stop_reason,
    is_notebook_draft,
    web_port_of,
)
from fabriek.domain.web_apps import (
    NOTEBOOK_PORT,
    idle_reason,
    is_idle_stop,
    jupyterlab_command,
    parse_activity,
)

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
SECONDS = st.integers(min_value=0, max_value=7 * 86400)


def test_a_notebook_draft_needs_no_command_and_gets_jupyterlab() -> None:
    draft = JobDraft(web_app="jupyterlab", gpus=1)
    assert is_notebook_draft(draft)
    assert command_of(draft) == jupyterlab_command()
    assert default_name(draft) == "notebook"
    assert web_port_of(draft) == NOTEBOOK_PORT
    # Its own command and port win; another app still needs a command.
    own = JobDraft(web_app="jupyterlab", command=["jupyter", "lab"], web_port=9000)
    assert not is_notebook_draft(own) and command_of(own) == ["jupyter", "lab"]
    assert web_port_of(own) == 9000 and default_name(own) is None
    with pytest.raises(ValidationError, match="exactly one of 'command' and 'script'"):
        JobDraft(web_app="tensorboard")
    with pytest.raises(ValidationError, match="exactly one of 'command' and 'script'"):
        JobDraft()


def test_jupyterlab_keeps_its_token_off_the_command_line() -> None:
    line = jupyterlab_command()[-1]
    assert "JUPYTER_TOKEN=" in line and "--IdentityProvider.token" not in line
    assert "$FABRIEK_WEB_BASE_URL" in line and '--ip="${FABRIEK_WEB_HOST:-127.0.0.1}"' in line
    assert "${FABRIEK_JUPYTER:-jupyter}" in line


def test_jupyters_activity_times_are_read_in_utc() -> None:
    assert parse_activity("2026-03-01T09:00:05.123456Z") == START + timedelta(
        seconds=5, microseconds=123456
    )
    assert parse_activity("2026-03-01T10:00:00+01:00") == START
    assert parse_activity("2026-03-01T09:00:00") == START
    assert parse_activity(None) is None and parse_activity("yesterday") is None


@given(SECONDS, st.none() | SECONDS, st.none() | SECONDS, SECONDS, SECONDS)
def test_a_notebook_is_stopped_exactly_when_every_activity_is_older_than_the_limit(
    elapsed: int, proxied: int | None, jupyter: int | None, idle_s: int, _extra: int
) -> None:
    now = START + timedelta(seconds=elapsed)
    seen = [s for s in (proxied, jupyter) if s is not None and s <= elapsed]
    check = IdleCheck(
        job_id=1,
        started_at=START,
        proxied_at=START + timedelta(seconds=proxied) if proxied is not None else None,
        jupyter_at=START + timedelta(seconds=jupyter) if jupyter is not None else None,
    )
    reason = idle_stop_reason(check, idle_s, now)
    last = max(seen, default=0)
    # Activity "in the future" (clocks a little apart) counts as now: never idle for it.
    future = any(s is not None and s > elapsed for s in (proxied, jupyter))
    expected = idle_s > 0 and not future and elapsed - last >= idle_s
    assert (reason is not None) == expected
    if reason is not None:
        assert is_idle_stop(reason) and reason == idle_reason(idle_s)
        assert "files are kept" in reason


def test_no_activity_before_the_start_counts() -> None:
    early = IdleCheck(1, START, START - timedelta(hours=5), None)
    assert idle_stop_reason(early, 600, START + timedelta(seconds=599)) is None
    assert idle_stop_reason(early, 600, START + timedelta(seconds=600)) is not None


def test_the_setting_in_minutes_becomes_seconds_and_zero_never_stops() -> None:
    assert idle_seconds(60) == 3600 and idle_seconds(0.25) == 15 and idle_seconds(0) == 0
    assert idle_stop_reason(IdleCheck(1, START, None, None), 0, START + timedelta(days=9)) is None
    assert not is_idle_stop("cancelled on request") and not is_idle_stop(None)
