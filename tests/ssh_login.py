"""A real login node for the tests: Debian's openssh-server on a loopback port, trusting the
factory's SSH CA and asking Fabriek for keys and principals at every login, exactly as
docs/sites.md tells an operator to configure it; and Unix accounts for the people.

Plain Python, no pytest. `ensure_openssh()` installs openssh-server and openssh-client with
apt when missing (under the machine-wide setup lock) and returns None, or a loud reason
why not, for `pytest.skip`.

Facts (Debian 12, root, no systemd): sshd wants /run/sshd (its privilege-separation
chroot), which only the service's start-up makes; the AuthorizedKeysCommand and
AuthorizedPrincipalsCommand programs must be owned by root and sit in folders nobody else
may write (no /tmp); their user here is root, because this machine's Python is under
/root, which `nobody` may not enter.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.servers import free_port
from tests.setup_lock import machine_setup

SSHD = Path("/usr/sbin/sshd")
PRIVSEP_DIR = Path("/run/sshd")
# UIDs of the test people on the login node, far from everything else on the machine.
UID_BASE = 1_900_300_000
FABRIEK = Path(sys.executable).with_name("fabriek")


def ensure_openssh() -> str | None:
    """openssh-server and -client installed, or why not."""
    if SSHD.exists() and shutil.which("ssh") and shutil.which("ssh-keygen"):
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with machine_setup():
        if SSHD.exists() and shutil.which("ssh"):
            return None
        last = ""
        for attempt in range(2):
            if attempt:
                subprocess.run(
                    ["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600
                )
            done = subprocess.run(
                ["apt-get", "install", "-y", "-q", "openssh-server", "openssh-client"],
                env=env, capture_output=True, text=True, timeout=900,
            )  # fmt: skip
            if done.returncode == 0:
                return None
            last = (done.stderr or done.stdout)[-800:]
    return f"openssh-server could not be installed with apt: {last}"


def sshd_config_lines(
    *, port: int, folder: Path, url: str, site: str, token_file: Path, fabriek: Path = FABRIEK
) -> list[str]:
    """The sshd_config of a login node that trusts the factory's CA and asks Fabriek; the
    lines from `TrustedUserCAKeys` on are the ones docs/sites.md shows."""
    ask = f"--url {url} --site {site} --token-file {token_file} %u"
    return [
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {folder / 'host_ed25519'}",
        f"PidFile {folder / 'sshd.pid'}",
        "StrictModes no",  # the test people's homes are under the test's temporary folder
        "LogLevel VERBOSE",
        f"TrustedUserCAKeys {folder / 'fabriek_ca.pub'}",
        f"AuthorizedPrincipalsCommand {fabriek} site-agent principals {ask}",
        "AuthorizedPrincipalsCommandUser root",
        f"AuthorizedKeysCommand {fabriek} site-agent authorized-keys {ask}",
        "AuthorizedKeysCommandUser root",
        "AuthorizedKeysFile none",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
    ]


@dataclass
class LoginNode:
    """A running sshd on 127.0.0.1:`port`; its log in `folder/sshd.log`."""

    port: int
    folder: Path
    process: subprocess.Popen[bytes]

    def log(self) -> str:
        return (self.folder / "sshd.log").read_text(errors="replace")

    def ssh(
        self, user: str, key: Path, command: str, certificate: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `command` on the login node as `user` with this key (and certificate, if
        given); only that identity is offered."""
        options = [
            "-F", "/dev/null", "-p", str(self.port), "-i", str(key),
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=20",
        ]  # fmt: skip
        if certificate is not None:
            options += ["-o", f"CertificateFile={certificate}"]
        return subprocess.run(
            ["ssh", *options, f"{user}@127.0.0.1", command],
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        )  # fmt: skip


@contextlib.contextmanager
def login_node(url: str, site: str, token: str, ca_public_key: str) -> Iterator[LoginNode]:
    """An sshd trusting `ca_public_key` and asking the control plane at `url` as `site`'s
    agent (with `token`); stopped afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="fabriek-sshd-"))
    try:
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / "host_ed25519")],
            check=True,
        )
        (folder / "fabriek_ca.pub").write_text(ca_public_key.strip() + "\n")
        token_file = folder / "site-token"
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)  # readable by sshd's command user (root) only
        port = free_port()
        config = folder / "sshd_config"
        lines = sshd_config_lines(
            port=port, folder=folder, url=url, site=site, token_file=token_file
        )
        config.write_text("\n".join(lines) + "\n")
        checked = subprocess.run(
            [str(SSHD), "-t", "-f", str(config)], capture_output=True, text=True
        )
        if checked.returncode != 0:
            raise RuntimeError(f"sshd refuses its configuration: {checked.stderr}")
        with (folder / "sshd.log").open("wb") as log:
            process = subprocess.Popen(
                [str(SSHD), "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
        node = LoginNode(port, folder, process)
        _wait_listening(node)
        try:
            yield node
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _wait_listening(node: LoginNode, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if node.process.poll() is not None:
            raise RuntimeError(f"sshd ended at start:\n{node.log()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", node.port), 1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"sshd did not listen on {node.port}:\n{node.log()}")


def unix_account(name: str, home_parent: Path) -> int:
    """A Unix account `name` on this machine (the login node), with a home of its own;
    its UID, chosen free from UID_BASE up."""
    try:
        found = pwd.getpwnam(name).pw_uid
    except KeyError:
        pass
    else:
        subprocess.run(["usermod", "--password", "*", name], check=True, capture_output=True)
        return found
    uid = UID_BASE
    while True:
        try:
            pwd.getpwuid(uid)
        except KeyError:
            break
        uid += 1
    home = home_parent / name
    subprocess.run(
        # '*' (no password), not useradd's '!': sshd without PAM takes '!' for a locked
        # account and refuses even keys and certificates.
        ["useradd", "--uid", str(uid), "--home-dir", str(home), "--create-home",
         "--shell", "/bin/bash", "--password", "*", name],
        check=True, capture_output=True,
    )  # fmt: skip
    return uid


def remove_unix_account(name: str) -> None:
    """Remove a test account made by `unix_account` (and its home)."""
    subprocess.run(["userdel", "--remove", name], capture_output=True)
