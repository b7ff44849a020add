"""SSH access through the HTTP API: registering and revoking public keys, certificates
signed by the factory's CA (checked with `ssh-keygen -L`), and what a site's login nodes
are told for a Unix username as people join and leave projects."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Client, problem_of
from tests.people import new_person
from tests.servers import LiveServer
from tests.test_api_budgets import new_project
from tests.test_api_site_agent import agent, issue


def keypair(folder: Path, name: str, kind: str = "ed25519", bits: int | None = None) -> Path:
    """A fresh key pair made by ssh-keygen; the private key's path (public: `.pub`)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    size = ["-b", str(bits)] if bits else []
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, *size, "-N", "", "-C", name, "-f", str(path)], check=True
    )
    return path


def member(server: LiveServer, client: Client, name: str) -> tuple[httpx.Client, str]:
    """A new person `name` in a new project of their own (its lead: pieter)."""
    person = new_person(server, name, "Technische Universiteit Delft")
    project = new_project(client, f"p{name.replace('-', '')}"[:40])
    added = client("pieter").post(f"/api/v1/projects/{project}/members", json={"username": name})
    assert added.status_code == 201, added.text
    return person, project


def trail(client: Client, actor: str) -> list[dict[str, Any]]:
    """The audit entries of one person, as an admin reads them."""
    found = client("admin").get("/api/v1/audit", params={"actor": actor})
    assert found.status_code == 200, found.text
    items: list[dict[str, Any]] = found.json()["items"]
    return items


def certify(person: httpx.Client, key: Path, **extra: Any) -> httpx.Response:
    """Ask for a certificate; accept the factory's terms of use first when it says so (tests
    elsewhere may have published some)."""
    body = {"public_key": Path(f"{key}.pub").read_text(), **extra}
    done = person.post("/api/v1/users/me/ssh-certificates", json=body)
    pending = done.json().get("terms", []) if done.status_code == 403 else []
    for terms in pending:
        accepted = person.post(terms["accept_url"])
        assert accepted.status_code in (200, 201), accepted.text
    if pending:
        done = person.post("/api/v1/users/me/ssh-certificates", json=body)
    return done


def test_a_member_registers_lists_and_revokes_keys_and_bad_keys_are_refused_saying_why(
    server: LiveServer, client: Client, unique: str, tmp_path: Path
) -> None:
    name = f"k{unique}"
    person, _ = member(server, client, name)
    key = keypair(tmp_path, "laptop")
    added = person.post(
        "/api/v1/users/me/ssh-keys", json={"public_key": Path(f"{key}.pub").read_text()}
    )
    assert added.status_code == 201, added.text
    body = added.json()
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-f", f"{key}.pub"], capture_output=True, text=True, check=True
    )
    assert (body["key_type"], body["bits"], body["comment"]) == ("ssh-ed25519", 256, "laptop")
    assert body["fingerprint"] == listed.stdout.split()[1]
    again = person.post(
        "/api/v1/users/me/ssh-keys", json={"public_key": Path(f"{key}.pub").read_text()}
    )
    assert "registered already" in str(problem_of(again, 409)["detail"])
    small = keypair(tmp_path, "old", "rsa", 2048)
    refused = problem_of(
        person.post(
            "/api/v1/users/me/ssh-keys", json={"public_key": Path(f"{small}.pub").read_text()}
        ),
        422,
    )
    assert "2048 bits; at least 3072" in str(refused["detail"])
    private = problem_of(
        person.post("/api/v1/users/me/ssh-keys", json={"public_key": key.read_text()}), 422
    )
    assert "private key" in str(private["detail"])
    assert [k["id"] for k in person.get("/api/v1/users/me/ssh-keys").json()] == [body["id"]]
    # Another person cannot see or revoke it.
    problem_of(client("maria").delete(f"/api/v1/users/me/ssh-keys/{body['id']}"), 404)
    revoked = person.delete(f"/api/v1/users/me/ssh-keys/{body['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert person.get("/api/v1/users/me/ssh-keys").json() == []
    everything = person.get("/api/v1/users/me/ssh-keys", params={"include_revoked": True}).json()
    assert [k["revoked_at"] is not None for k in everything] == [True]
    # Both on the audit trail.
    assert {"ssh-key-add", "ssh-key-revoke"} <= {e["action"] for e in trail(client, name)}


def test_a_certificate_is_signed_for_ones_own_username_only(
    server: LiveServer, client: Client, unique: str, tmp_path: Path
) -> None:
    name = f"c{unique}"
    person, _ = member(server, client, name)
    key = keypair(tmp_path, "id_ed25519")
    done = certify(person, key, hours=2)
    assert done.status_code == 201, done.text
    cert = done.json()
    assert cert["principals"] == [name] and cert["key_id"] == f"fabriek:{name}:{cert['serial']}"
    assert 0 < cert["serial"] < 2**63
    Path(f"{key}-cert.pub").write_text(cert["certificate"] + "\n")
    shown = subprocess.run(
        ["ssh-keygen", "-L", "-f", f"{key}-cert.pub"], capture_output=True, text=True, check=True
    ).stdout
    assert "user certificate" in shown and f'Key ID: "fabriek:{name}:' in shown
    assert f"Serial: {cert['serial']}" in shown and "permit-pty" in shown
    assert shown.split("Principals:")[1].split()[0] == name
    ca = (server.settings.state_dir / "ssh_ca.pub").read_text().split()[1]
    assert ca in cert["ca_public_key"]
    # Another principal, alone or beside one's own: refused, naming it.
    for asked in (["root"], [name, "maria"]):
        refused = problem_of(certify(person, key, principals=asked), 403)
        assert repr(asked[-1]) in str(refused["detail"])
    problem_of(certify(person, key, hours=25), 422)
    problem_of(certify(person, keypair(tmp_path, "small", "rsa", 2048)), 422)
    # And on the audit trail with its key id, serial and fingerprint.
    issued = [e for e in trail(client, name) if e["action"] == "ssh-cert-issue"]
    assert len(issued) == 1, issued
    assert issued[0]["detail"]["key_id"] == cert["key_id"]
    assert issued[0]["detail"]["serial"] == str(cert["serial"])
    assert issued[0]["detail"]["fingerprint"] == cert["fingerprint"]


def test_no_certificate_outside_every_project(
    server: LiveServer, client: Client, unique: str, tmp_path: Path
) -> None:
    name = f"n{unique}"
    person = new_person(server, name, "Technische Universiteit Delft")
    refused = problem_of(certify(person, keypair(tmp_path, "k")), 403)
    assert "member of no active project" in str(refused["detail"])


def test_login_nodes_are_told_keys_and_principals_until_the_person_leaves_their_last_project(
    server: LiveServer, client: Client, unique: str, tmp_path: Path
) -> None:
    name = f"l{unique}"
    person, project = member(server, client, name)
    key = keypair(tmp_path, "k")
    line = Path(f"{key}.pub").read_text().strip()
    kept = person.post("/api/v1/users/me/ssh-keys", json={"public_key": line}).json()
    gone = person.post(
        "/api/v1/users/me/ssh-keys",
        json={"public_key": Path(f"{keypair(tmp_path, 'g')}.pub").read_text()},
    ).json()
    person.delete(f"/api/v1/users/me/ssh-keys/{gone['id']}")
    token = issue(client, "amsterdam")
    url = str(client().base_url)
    with agent(url, token) as site:
        base = "/api/v1/sites/amsterdam/agent"
        assert site.get(f"{base}/ssh-keys/{name}").json() == {"keys": [line]}
        assert site.get(f"{base}/principals/{name}").json() == {"principals": [name]}
        # Unknown people and odd names: nothing, never an error a login node must handle.
        assert site.get(f"{base}/ssh-keys/nobody-here").json() == {"keys": []}
        assert site.get(f"{base}/principals/Root%20x").json() == {"principals": []}
        # A person's own token is not the site's.
        problem_of(person.get(f"{base}/ssh-keys/{name}"), 401)
        removed = client("pieter").delete(f"/api/v1/projects/{project}/members/{name}")
        assert removed.status_code == 204, removed.text
        assert site.get(f"{base}/ssh-keys/{name}").json() == {"keys": []}
        assert site.get(f"{base}/principals/{name}").json() == {"principals": []}
    assert kept["id"] != gone["id"]
