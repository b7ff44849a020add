"""The site agent's usage push, without a cluster: batches cut only where a run starts, and
a sacct that fails sends nothing and keeps the last push's time (the real sacct, pointed at
a cluster that does not exist)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fabriek.domain.slurm_accounting import parse_sacct
from fabriek.sdk.site_agent import SiteAgentClient
from fabriek.site_agent import usage
from fabriek.site_agent.tools import ToolFailed
from tests.conftest import Client
from tests.test_api_site_agent import issue

DATA = Path(__file__).parent / "slurm" / "data"


def test_batches_hold_every_run_once_and_cut_only_where_a_run_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = (DATA / "sacct_22.05_allocations.txt").read_text()
    # A comment with a newline typed in it: its second line is no run of its own.
    lines = text.splitlines()
    lines[3] += "first line of a comment"
    lines.insert(4, "its second line")
    text = "\n".join(lines) + "\n"
    monkeypatch.setattr(usage, "BATCH_LINES", 5)
    batches = list(usage._batches(text))
    assert len(batches) == 3
    runs = [r for batch in batches for r in parse_sacct(batch)]
    assert [r.key for r in runs] == [r.key for r in parse_sacct(text)]
    assert any(r.comment == "first line of a comment\nits second line" for r in runs)


def test_a_failing_sacct_sends_nothing_and_keeps_the_last_push(
    client: Client, tmp_path: Path
) -> None:
    url = str(client().base_url)
    token = issue(client, "groningen", "admin")
    with SiteAgentClient(url, "groningen", token) as site, pytest.raises(ToolFailed, match="sacct"):
        usage.push_usage(site, tmp_path, {"SLURM_CONF": str(tmp_path / "no-slurm.conf")})
    assert not (tmp_path / usage.CURSOR).exists()
