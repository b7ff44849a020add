"""`fabriek models` and `fabriek sandbox`, and jobs submitted for a model, against a real
server: tables, JSON, warnings where the user looks, one-line errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
import yaml

from fabriek.services.demo.seed import demo_token
from tests.servers import LiveServer
from tests.test_cli import fabriek, one_line_error

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def env_of(server: LiveServer, user: str, tmp_path: Path) -> dict[str, str]:
    return {"FABRIEK_URL": server.url, "FABRIEK_TOKEN": demo_token(user).token,
            "FABRIEK_CONFIG_DIR": str(tmp_path)}  # fmt: skip


def test_register_link_a_job_and_read_the_ledger_and_docs(
    server: LiveServer, tmp_path: Path, unique: str
) -> None:
    maria = env_of(server, "maria", tmp_path)
    out = fabriek("models", "new", unique, "-A", "dutch-llm", "--provider", "TU Delft",
                  "--role", "downstream-modifier", "--licence", "apache-2.0", "--version", "1",
                  "--parameters", "7e9", "--external-base", "frontier=9.99e24", env=maria).stdout  # fmt: skip
    assert out == f"Registered model {unique} version 1\n"
    assert unique in fabriek("models", "-A", "dutch-llm", env=maria).stdout
    shown = fabriek("models", "show", unique, env=maria).stdout
    assert "7,000,000,000" in shown and "frontier (9.99e+24 FLOP)" in shown
    listed = json.loads(fabriek("models", "--json", env=maria).stdout)
    assert unique in [m["name"] for m in listed]

    run = ["run", "-A", "dutch-llm", "--gpus", "88", "--gpu-type", "h100", "--time",
           "7-00:00:00", "--begin", "2099-01-01T00:00:00", "--model", f"{unique}:1",
           "--purpose", "fine-tuning"]  # fmt: skip
    refused = fabriek(*run, "--", "true", env=maria, check=False)
    assert "acknowledge" in one_line_error(refused, 1)
    accepted = fabriek(*run, "--acknowledge-systemic-risk", "--", "true", env=maria)
    job_id = int(re.fullmatch(r"Submitted job (\d+)\n", accepted.stdout).group(1))  # type: ignore[union-attr]
    assert "warning:" in accepted.stderr and "notify the Commission by" in accepted.stderr
    reported = fabriek("models", "report", str(job_id), "--mfu", "0.45", env=maria).stdout
    assert f"Job {job_id} ({unique}:1, fine-tuning): reported" in reported

    book = fabriek("models", "ledger", f"{unique}:1", env=maria).stdout
    assert "cumulative:" in book and "EU AI Act lines" in book and "EXCEEDED" in book
    assert json.loads(fabriek("models", "ledger", f"{unique}:1", "--json", env=maria).stdout)[
        "systemic_risk"
    ]
    fabriek("models", "document", f"{unique}:1", "evaluation_strategies=Red-teamed.", env=maria)
    markdown = fabriek("models", "docs", f"{unique}:1", env=maria).stdout
    assert "Annex XI, section 2" in markdown and "Red-teamed." in markdown
    card = fabriek("models", "docs", f"{unique}:1", "--format", "card", env=maria).stdout
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["license"] == "apache-2.0" and "base_model" not in front  # not a Hub id
    assert front["eu_ai_act"]["base_models"] == ["frontier"]
    assert front["eu_ai_act"]["systemic_risk"] is True
    projected = fabriek("models", "projection", "--gpu-hours", "370000", "--gpu-type", "h100",
                        env=maria).stdout  # fmt: skip
    assert "crossed" in projected
    httpx.post(f"{server.url}/api/v1/jobs/{job_id}/cancel",
               headers={"Authorization": f"Bearer {demo_token('maria').token}"})  # fmt: skip


def test_bad_input_is_one_line_naming_the_field(
    server: LiveServer, tmp_path: Path, unique: str
) -> None:
    maria = env_of(server, "maria", tmp_path)
    absurd = fabriek("models", "new", unique, "-A", "dutch-llm", "--provider", "TU Delft",
                     "--version", "1", "--parameters", "1e17", env=maria, check=False)  # fmt: skip
    assert "parameters" in one_line_error(absurd, 2)
    negative = fabriek("models", "new", unique, "-A", "dutch-llm", "--provider", "TU Delft",
                       "--version", "1", "--parameters", "-5", env=maria, check=False)  # fmt: skip
    assert "parameters" in one_line_error(negative, 2)
    missing = fabriek("models", "ledger", "nosuch:1", env=maria, check=False)
    assert "nosuch" in one_line_error(missing, 1)
    wrong = fabriek("run", "-A", "photonic-inspect", "--model", "nosuch:1", "--purpose",
                    "evaluation", "--", "true", env=maria, check=False)  # fmt: skip
    assert "model" in one_line_error(wrong, 2)


def test_a_sandbox_is_marked_and_its_plan_filed(server: LiveServer, tmp_path: Path) -> None:
    sanne = env_of(server, "sanne", tmp_path)
    eva = env_of(server, "eva", tmp_path)
    mine = json.loads(fabriek("allocations", "-A", "photonic-inspect", "--json", env=sanne).stdout)
    allocation = str(mine[0]["id"])
    marked = fabriek("sandbox", "mark", allocation, "--authority", "RDI", env=eva).stdout
    assert "sandbox of RDI (NL)" in marked
    plan = tmp_path / "plan.md"
    plan.write_text("# Plan\n\nTest defect detection in the sandbox.\n")
    filed = fabriek("sandbox", "file", allocation, "plan", str(plan), env=sanne).stdout
    assert "text/markdown" in filed
    assert fabriek("sandbox", "get", allocation, "plan", env=sanne).stdout == plan.read_text()
    denied = fabriek("sandbox", "mark", allocation, "--authority", "RDI", env=sanne, check=False)
    assert "access team" in one_line_error(denied, 1)
