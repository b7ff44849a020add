"""Logging in to a real login node (Debian's openssh-server on a loopback port) that trusts
the factory's SSH CA and asks Fabriek at every login: with a certificate from the API, with
a registered key; and no more once the key is revoked or the person has left their last
project, even with a certificate that is still valid."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fabriek.services.accounts import ssh_ca
from tests.conftest import Client
from tests.servers import LiveServer
from tests.ssh_login import LoginNode, ensure_openssh, login_node, remove_unix_account, unix_account
from tests.test_api_site_agent import issue
from tests.test_api_ssh_access import certify, keypair, member
from tests.test_job_isolation import needs_root

pytestmark = [pytest.mark.parametrize("database_url", ["sqlite"], indirect=True), needs_root]

SITE = "amsterdam"


@pytest.fixture
def homes() -> Iterator[Path]:
    """A folder for the test people's homes that they may enter (not under root's own)."""
    folder = Path(tempfile.mkdtemp(prefix="fabriek-ssh-homes-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def node(server: LiveServer, client: Client) -> Iterator[LoginNode]:
    """A login node of site amsterdam, with the site's agent token."""
    reason = ensure_openssh()
    if reason is not None:
        pytest.skip(reason)
    # The CA exists from the first certificate; the node is given its public key up front,
    # as the site's agent writes it (`ssh_ca_public_key` of the desired state).
    ca = ssh_ca.ensure(server.settings.state_dir)
    with login_node(server.url, SITE, issue(client, SITE), ca) as running:
        yield running


def person(
    server: LiveServer, client: Client, unique: str, homes: Path
) -> tuple[str, httpx.Client, str]:
    """A new person in a project of their own, with a Unix account on the login node."""
    name = f"fab-ssh-{unique[1:9]}"
    api, project = member(server, client, name)
    unix_account(name, homes)
    return name, api, project


def test_a_member_logs_in_with_a_certificate_until_they_leave_their_last_project(
    server: LiveServer, client: Client, node: LoginNode, unique: str, homes: Path, tmp_path: Path
) -> None:
    name, api, project = person(server, client, unique, homes)
    try:
        key = keypair(tmp_path, "id_ed25519")
        signed = certify(api, key, hours=1)
        assert signed.status_code == 201, signed.text
        assert signed.json()["principals"] == [name]
        cert = Path(f"{key}-cert.pub")
        cert.write_text(signed.json()["certificate"] + "\n")

        done = node.ssh(name, key, "id -un", certificate=cert)
        assert (done.returncode, done.stdout.strip()) == (0, name), (done.stderr, node.log())
        assert f"fabriek:{name}:{signed.json()['serial']}" in node.log()  # the key id, logged
        # The same key without its certificate is nobody's: it was never registered. (ssh
        # offers `<key>-cert.pub` by itself: the key is copied away from it.)
        bare = tmp_path / "bare"
        bare.mkdir()
        shutil.copy2(key, bare / "id_ed25519")
        assert node.ssh(name, bare / "id_ed25519", "id -un").returncode == 255
        # The certificate is for this person only.
        other = "fab-ssh-other"
        unix_account(other, homes)
        assert node.ssh(other, key, "id -un", certificate=cert).returncode == 255

        removed = client("pieter").delete(f"/api/v1/projects/{project}/members/{name}")
        assert removed.status_code == 204, removed.text
        # Still valid for an hour, but the person is in no project now: refused.
        again = node.ssh(name, key, "id -un", certificate=cert)
        assert again.returncode == 255 and again.stdout == "", again
    finally:
        remove_unix_account(name)


def test_a_registered_key_logs_in_and_a_revoked_one_does_not(
    server: LiveServer, client: Client, node: LoginNode, unique: str, homes: Path, tmp_path: Path
) -> None:
    name, api, _ = person(server, client, unique, homes)
    try:
        key = keypair(tmp_path, "laptop")
        added = api.post(
            "/api/v1/users/me/ssh-keys", json={"public_key": Path(f"{key}.pub").read_text()}
        )
        assert added.status_code == 201, added.text
        done = node.ssh(name, key, "id -un")
        assert (done.returncode, done.stdout.strip()) == (0, name), (done.stderr, node.log())

        api.delete(f"/api/v1/users/me/ssh-keys/{added.json()['id']}")
        refused = node.ssh(name, key, "id -un")
        assert refused.returncode == 255 and refused.stdout == "", refused
    finally:
        remove_unix_account(name)
