"""`fabriek sites harvest` through real HTTP: an operator sees where the harvest of the
site's Slurm accounting stands and asks for one now."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fabriek.sdk.site_agent import SiteAgentClient
from tests.conftest import Client
from tests.servers import LiveServer
from tests.test_api_site_accounting import captured
from tests.test_api_site_agent import issue
from tests.test_cli import fabriek, one_line_error
from tests.test_cli_site_agent import env_of

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_the_operator_sees_the_harvest_and_is_told_why_a_pull_cannot_be(
    server: LiveServer, client: Client, tmp_path: Path
) -> None:
    otto = env_of(server, "otto", tmp_path)
    with SiteAgentClient(server.url, "amsterdam", issue(client, "amsterdam")) as site:
        site.push_accounting(captured("clione"), through=datetime.now(UTC))
    table = fabriek("sites", "harvest", "amsterdam", env=otto).stdout
    assert "harvested through" in table and "root" in table and "not charged" in table
    state = json.loads(fabriek("sites", "harvest", "amsterdam", "--json", env=otto).stdout)
    assert state["jobs_added"] >= 11 and state["unmatched"][0]["user"] == "root"
    # Amsterdam runs on the local engine here: nothing to pull, in one line, non-zero.
    refused = fabriek("sites", "harvest", "amsterdam", "--now", env=otto, check=False)
    assert "pushes it" in one_line_error(refused, refused.returncode)
    refused = fabriek("sites", "harvest", "groningen", env=otto, check=False)
    assert "operator" in one_line_error(refused, refused.returncode)
