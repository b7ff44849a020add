"""The portal's SSH keys page: a person pastes a public key, sees it listed, is told in
words why a bad one was refused, and revokes one; without a browser, as the forms post."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import Client
from tests.servers import LiveServer
from tests.test_api_ssh_access import keypair, member

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_a_person_adds_lists_and_revokes_keys_on_the_portal(
    server: LiveServer, client: Client, unique: str, tmp_path: Path
) -> None:
    name = f"w{unique}"
    person, _ = member(server, client, name)
    token = person.headers["Authorization"].split()[1]
    key = keypair(tmp_path, "desk")
    fingerprint = subprocess.run(
        ["ssh-keygen", "-l", "-f", f"{key}.pub"], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        away = browser.get("/ssh-keys")
        assert away.status_code == 303 and away.headers["location"] == "/signin?next=/ssh-keys"
        signed = browser.post("/signin", data={"token": token, "next": "/ssh-keys"})
        assert signed.status_code == 303, signed.text
        empty = browser.get("/ssh-keys")
        assert empty.status_code == 200 and "No keys registered." in empty.text
        added = browser.post("/ssh-keys", data={"public_key": Path(f"{key}.pub").read_text()})
        assert added.status_code == 303 and added.headers["location"] == "/ssh-keys"
        listed = browser.get("/ssh-keys").text
        assert fingerprint in listed and "ssh-ed25519 (256)" in listed and "desk" in listed
        small = keypair(tmp_path, "old", "rsa", 2048)
        refused = browser.post("/ssh-keys", data={"public_key": Path(f"{small}.pub").read_text()})
        assert refused.status_code == 422 and 'role="alert"' in refused.text
        assert "2048 bits; at least 3072" in refused.text
        again = browser.post("/ssh-keys", data={"public_key": Path(f"{key}.pub").read_text()})
        assert again.status_code == 409 and "registered already" in again.text
        key_id = person.get("/api/v1/users/me/ssh-keys").json()[0]["id"]
        gone = browser.post(f"/ssh-keys/{key_id}/revoke")
        assert gone.status_code == 303
        assert fingerprint not in browser.get("/ssh-keys").text
        assert browser.post(f"/ssh-keys/{key_id + 1000}/revoke").status_code == 404
