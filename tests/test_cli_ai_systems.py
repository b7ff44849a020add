"""`fabriek ai-systems` and `fabriek classify`: register and list, the guided questionnaire
at the terminal, the scripted one with --answer, the result with tiers, obligations and
dates, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fabriek.services.demo.seed import demo_token
from tests.conftest import Client
from tests.servers import LiveServer
from tests.test_api_ai_systems import new_project
from tests.test_cli import fabriek, one_line_error

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def env_of(server: LiveServer, user: str) -> dict[str, str]:
    return {"FABRIEK_URL": server.url, "FABRIEK_TOKEN": demo_token(user).token}


def typed(lines: list[str], *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`fabriek ARGS` with these lines typed at its prompts."""
    return subprocess.run(
        [sys.executable, "-m", "fabriek.main", *args],
        env={**os.environ, "COLUMNS": "200", **env},
        input="".join(f"{line}\n" for line in lines),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_register_list_and_classify_by_script(
    server: LiveServer, client: Client, unique: str
) -> None:
    project = new_project(client, unique)
    sanne = env_of(server, "sanne")
    name = f"{unique}-grader"
    made = fabriek("ai-systems", "new", name, "-A", project, "--purpose",
                   "Grades exam essays for a university", "--provider",
                   "Eindhoven Photonics AI B.V.", env=sanne).stdout  # fmt: skip
    assert name in made and f"fabriek classify {name}" in made
    listed = json.loads(fabriek("ai-systems", "-A", project, "--json", env=sanne).stdout)
    assert [s["name"] for s in listed] == [name] and listed[0]["classification"] is None

    answers = ["ai_system=yes", "eu_nexus=yes", "role=provider,deployer",
               "scope_exclusions=none", "open_source=no", "prohibited_practices=none",
               "annex1_product=neither", "annex3_areas=education",
               "annex3_education=learning-outcomes", "profiling=no",
               "derogation_conditions=none", "transparency=none", "gpai_provider=no"]  # fmt: skip
    shown = fabriek("classify", name, *(x for a in answers for x in ("--answer", a)),
                    env=sanne).stdout  # fmt: skip
    assert "High-risk (Annex III use)" in shown and "Art. 6(2), Annex III" in shown
    assert "Your obligations" in shown and "2027-12-02" in shown and "Art. 9" in shown
    assert "not yet" in shown and "applies now" in shown
    table = fabriek("ai-systems", "-A", project, env=sanne).stdout
    assert "high-risk-annex-iii" in table and "finished" in table
    nl = fabriek("ai-systems", "show", name, "--lang", "nl", env=sanne).stdout
    assert "Annex III, point 3(b)" in nl and "Hoog risico" in nl and "Leerresultaten" in nl


def test_an_unfinished_or_contradictory_script_is_a_one_line_error(
    server: LiveServer, client: Client, unique: str
) -> None:
    project = new_project(client, unique)
    sanne = env_of(server, "sanne")
    name = f"{unique}-sorter"
    fabriek("ai-systems", "new", name, "-A", project, "--purpose", "Sorts job applications",
            "--provider", "Eindhoven Photonics AI B.V.", env=sanne)  # fmt: skip
    half = fabriek("classify", name, "--answer", "ai_system=yes", env=sanne, check=False)
    assert "not finished: next is eu_nexus" in one_line_error(half, 1)
    assert "--answer eu_nexus=" in half.stderr
    state = json.loads(fabriek("classify", name, "--json", env=sanne, check=False).stdout)
    assert [a["question"] for a in state["answers"]] == ["ai_system"]
    wrong = fabriek("classify", name, "--answer", "eu_nexus=perhaps", env=sanne, check=False)
    assert "eu_nexus: answer yes or no" in one_line_error(wrong, 2)
    personal = fabriek("classify", name, "--answer", "eu_nexus=yes", "--answer", "role=provider",
                       "--answer", "scope_exclusions=personal-use", env=sanne, check=False)  # fmt: skip
    assert "scope_exclusions: contradicts your answer to role" in one_line_error(personal, 2)
    syntax = fabriek("classify", name, "--answer", "eu_nexus", env=sanne, check=False)
    assert "QUESTION=VALUE" in one_line_error(syntax, 2)
    hidden = fabriek("classify", name, env=env_of(server, "mo"), check=False)
    assert "not visible to you" in one_line_error(hidden, 1)


def test_the_guided_questionnaire_at_the_terminal(
    server: LiveServer, client: Client, unique: str
) -> None:
    project = new_project(client, unique)
    sanne = env_of(server, "sanne")
    name = f"{unique}-chat"
    fabriek("ai-systems", "new", name, "-A", project, "--purpose", "A support chatbot",
            "--provider", "Eindhoven Photonics AI B.V.", env=sanne)  # fmt: skip
    # A typo at a multiple-choice prompt is asked again; the rest answers in order.
    lines = ["yes", "yes", "9", "1", "0", "no", "0", "3", "0", "1", "no"]
    done = typed(lines, "classify", name, env=sanne)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Is it an AI system" in out and "Art. 3(1)" in out
    assert "Give numbers from 1 to 2" in out
    assert "Transparency duties" in out and "Art. 50(1)" in out and "applies now" in out
    # Stopped half-way (end of input): one line, and the answers so far are kept.
    again = typed(["yes"], "classify", name, "--restart", env=sanne)
    assert "stopped at eu_nexus; the answers so far are kept" in one_line_error(again, 1)
    kept = json.loads(fabriek("classify", name, "--json", env=sanne, check=False).stdout)
    assert [a["question"] for a in kept["answers"]] == ["ai_system"]
    dutch = typed(["nee"], "classify", name, "--lang", "nl", env=sanne)
    assert dutch.returncode == 0, dutch.stderr
    assert "Buiten de AI-verordening" in dutch.stdout
