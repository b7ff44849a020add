"""`fabriek experts` and `fabriek kb`: the directory, a request matched with its reasons,
hours logged, the knowledge base searched by a Dutch word form; one-line errors."""

from __future__ import annotations

import json

import pytest

from fabriek.services.demo.seed import demo_token
from tests.conftest import Client
from tests.servers import LiveServer
from tests.test_api_users import org_id
from tests.test_cli import fabriek, one_line_error

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def env_of(server: LiveServer, user: str) -> dict[str, str]:
    return {"FABRIEK_URL": server.url, "FABRIEK_TOKEN": demo_token(user).token}


def test_a_hub_asks_for_expertise_matches_assigns_and_logs(
    server: LiveServer, client: Client
) -> None:
    hanna = env_of(server, "hanna")
    table = fabriek("experts", "--skill", "computer-vision-manufacturing", env=hanna).stdout
    assert "Noor Willems" in table and "Bram Kuipers" in table and "Hours left" in table
    listed = client("hanna").get("/api/v1/experts", params={"hub": "brainport"}).json()
    org = str(org_id(client, "Brabantse Machinefabriek B.V."))
    made = json.loads(
        fabriek("experts", "request", "--skill", "computer-vision-manufacturing",
                "--about", "ticket:42", "--org", org, "--hours", "3", "--json",
                env=hanna).stdout
    )  # fmt: skip
    assert made["ticket_id"] == 42 and made["hub"] == "brainport"
    request = str(made["id"])
    matched = fabriek("experts", "match", request, env=hanna).stdout
    assert "1. Noor Willems" in matched
    assert "region: works at AI-hub Brainport, the hub serving Noord-Brabant" in matched
    noor = next(e["id"] for e in listed["items"] if e["name"] == "Noor Willems")
    fabriek("experts", "assign", request, str(noor), env=hanna)
    shown = fabriek("experts", "log", request, "--hours", "2", "--note", "camera set-up",
                    env=hanna).stdout  # fmt: skip
    assert "Noor Willems" in shown and "Hours delivered" in shown


def test_expertise_errors_are_one_line(server: LiveServer) -> None:
    hanna = env_of(server, "hanna")
    bad_skill = fabriek("experts", "request", "--skill", "knitting", "--about", "ticket:1",
                        env=hanna, check=False)  # fmt: skip
    assert "unknown skill 'knitting'" in one_line_error(bad_skill, 2)
    bad_about = fabriek("experts", "request", "--skill", "mlops", "--about", "job:1",
                        env=hanna, check=False)  # fmt: skip
    assert "ticket:N or proposal:N" in one_line_error(bad_about, 2)


def test_kb_search_finds_a_dutch_word_form_and_shows_the_article(server: LiveServer) -> None:
    maria = env_of(server, "maria")
    found = fabriek("kb", "search", "aanvragen", "--lang", "nl", env=maria).stdout
    assert "Een aanvraag voor GPU-uren indienen" in found and "fabriek kb show" in found
    shown = fabriek("kb", "show", "aanvraag-indienen", env=maria).stdout
    assert shown.startswith("# Een aanvraag voor GPU-uren indienen")
    assert "docs/access.md#tracks" in shown and "fabriek kb show apply-to-a-call" in shown
    missing = fabriek("kb", "show", "no-such-article", env=maria, check=False)
    assert "does not exist" in one_line_error(missing, 1)
