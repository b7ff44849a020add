"""`fabriek data`: push, pull, ls, show, grant, revoke, rm and keys through the real server,
with one-line errors."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from fabriek.services.demo.seed import demo_token
from tests.servers import LiveServer
from tests.test_cli import fabriek, one_line_error

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def env_of(server: LiveServer, user: str) -> dict[str, str]:
    return {"FABRIEK_URL": server.url, "FABRIEK_TOKEN": demo_token(user).token}


def test_push_pull_list_grant_revoke_remove(
    server: LiveServer, unique: str, tmp_path: Path
) -> None:
    pieter, mo = env_of(server, "pieter"), env_of(server, "mo")
    source = tmp_path / f"{unique}.bin"
    source.write_bytes(os.urandom(2 * 1024 * 1024 + 11))
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    # The caller's first project is the default; the file's name is the dataset's.
    pushed = json.loads(
        fabriek("data", "push", str(source), "--classification", "confidential",
                "--licence", "proprietary", "--json", env=pieter).stdout
    )  # fmt: skip
    assert pushed["number"] == 1 and pushed["sha256"] == digest
    again = fabriek("data", "push", str(source), "--name", unique, "-p", "dutch-llm", env=pieter)
    assert f"dutch-llm/{unique} version 1" in again.stdout
    listed = json.loads(fabriek("data", "ls", "--json", env=pieter).stdout)
    mine = {d["name"]: d for d in listed}
    assert mine[source.name]["classification"] == "confidential"
    assert mine[source.name]["latest_version"] == 1 and mine[source.name]["project"] == "dutch-llm"
    table = fabriek("data", "ls", env=pieter).stdout
    assert source.name in table and "2.0 MiB" in table
    out = tmp_path / "back.bin"
    pulled = fabriek("data", "pull", source.name, "-o", str(out), env=pieter).stdout
    assert "verified" in pulled and out.read_bytes() == source.read_bytes()
    assert [p.name for p in tmp_path.iterdir() if ".part" in p.name] == []
    # Another organisation's project: only with consent.
    refused = fabriek("data", "grant", source.name, "legal-nl", env=pieter, check=False)
    assert "--cross-org" in one_line_error(refused, 1)
    granted = fabriek("data", "grant", source.name, "legal-nl", "--cross-org", env=pieter)
    assert "with your consent" in granted.stdout
    shown = json.loads(fabriek("data", "show", source.name, "--json", env=pieter).stdout)
    assert shown["grants"] == ["legal-nl"] and shown["versions"][0]["sha256"] == digest
    theirs = tmp_path / "theirs.bin"
    fabriek("data", "pull", source.name, "-o", str(theirs), env=mo)
    assert theirs.read_bytes() == source.read_bytes()
    fabriek("data", "revoke", source.name, "legal-nl", env=pieter)
    gone = fabriek("data", "pull", source.name, "-o", str(tmp_path / "x"), env=mo, check=False)
    assert "no dataset named" in one_line_error(gone, 2)
    removed = fabriek("data", "rm", source.name, "--yes", env=pieter)
    assert "keys are destroyed" in removed.stdout


def test_bad_names_and_unknown_datasets_are_one_line_errors(
    server: LiveServer, tmp_path: Path
) -> None:
    pieter = env_of(server, "pieter")
    odd = tmp_path / "my data.csv"
    odd.write_text("a,b\n")
    bad = fabriek("data", "push", str(odd), env=pieter, check=False)
    assert "--name" in one_line_error(bad, 2) and "found ' '" in bad.stderr
    traversal = fabriek("data", "push", str(odd), "--name", "../up", env=pieter, check=False)
    assert "path separator" in one_line_error(traversal, 2)
    missing = fabriek("data", "pull", "no-such-dataset", env=pieter, check=False)
    assert "no dataset named 'no-such-dataset'" in one_line_error(missing, 2)


def test_keys_are_listed_and_rotated(server: LiveServer, tmp_path: Path) -> None:
    sanne = env_of(server, "sanne")
    source = tmp_path / "wafers.npy"
    source.write_bytes(b"\x93NUMPY" + os.urandom(1000))
    fabriek("data", "push", str(source), "-p", "photonic-inspect", env=sanne)
    keys = json.loads(fabriek("data", "keys", "--json", env=sanne).stdout)
    org = next(k for k in keys if k["current"])["organisation_id"]
    assert {k["organisation"] for k in keys} == {"Eindhoven Photonics AI B.V."}
    rotated = fabriek("data", "rotate-key", str(org), env=sanne).stdout
    assert "re-wrapped, no data re-encrypted" in rotated
    refused = fabriek("data", "rotate-key", str(org), env=env_of(server, "maria"), check=False)
    assert "may rotate" in one_line_error(refused, 1)
