"""`fabriek ssh-key` and `fabriek ssh cert` through real HTTP, as a person types them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Client
from tests.servers import LiveServer
from tests.test_api_ssh_access import keypair, member
from tests.test_cli import fabriek, one_line_error

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_keys_added_listed_removed_and_a_certificate_written_next_to_the_key(
    server: LiveServer, client: Client, unique: str, tmp_path: Path
) -> None:
    name = f"s{unique}"
    person, _ = member(server, client, name)
    token = person.headers["Authorization"].split()[1]
    env = {"FABRIEK_URL": server.url, "FABRIEK_TOKEN": token,
           "FABRIEK_CONFIG_DIR": str(tmp_path / "cfg")}  # fmt: skip
    key = keypair(tmp_path / ".ssh", "id_ed25519")
    out = fabriek("ssh-key", "add", f"{key}.pub", env=env).stdout
    assert "registered" in out and "ssh-ed25519 256 bits SHA256:" in out
    listed = json.loads(fabriek("ssh-key", "list", "--json", env=env).stdout)
    assert [k["comment"] for k in listed] == ["id_ed25519"]
    table = fabriek("ssh-key", "list", env=env).stdout
    assert "FINGERPRINT" in table and listed[0]["fingerprint"] in table
    # From standard input too; a bad key is one line and a non-zero exit.
    small = keypair(tmp_path, "small", "rsa", 2048)
    refused = subprocess.run(
        [sys.executable, "-m", "fabriek.main", "ssh-key", "add", "-"],
        input=Path(f"{small}.pub").read_text(), env={**os.environ, **env},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "at least 3072" in one_line_error(refused, 2)
    assert "cannot read" in one_line_error(
        fabriek("ssh-key", "add", str(tmp_path / "nope.pub"), env=env, check=False), 2
    )
    fabriek("ssh-key", "remove", str(listed[0]["id"]), env=env)
    assert json.loads(fabriek("ssh-key", "list", "--json", env=env).stdout) == []

    out = fabriek("ssh", "cert", "--key", f"{key}.pub", "--hours", "2", env=env).stdout
    written = tmp_path / ".ssh" / "id_ed25519-cert.pub"
    assert str(written) in out.replace("\n", "") and name in out and "valid" in out
    shown = subprocess.run(
        ["ssh-keygen", "-L", "-f", str(written)], capture_output=True, text=True, check=True
    ).stdout
    assert shown.split("Principals:")[1].split()[0] == name
    refused = fabriek("ssh", "cert", "--key", f"{key}.pub", "--hours", "30", env=env, check=False)
    assert refused.returncode == 2
