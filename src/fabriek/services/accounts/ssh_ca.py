"""The factory's SSH certificate authority: one Ed25519 key pair in the server's state
folder, made on first use, that signs short-lived OpenSSH user certificates.

Login nodes trust its public key (`TrustedUserCAKeys`); the private key never leaves the
control plane's host and no job may read it (the local engine hides it like the master
key). Ed25519 because OpenSSH 8.2 and later refuse SHA-1 `ssh-rsa` signatures, which an
RSA CA would still make for old clients.
"""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    SSHCertificateBuilder,
    SSHCertificateType,
    SSHCertPublicKeyTypes,
)

CA_KEY_NAME = "ssh_ca"

# What an interactive login needs; no forced command, no source-address restriction.
USER_EXTENSIONS = (
    "permit-X11-forwarding",
    "permit-agent-forwarding",
    "permit-port-forwarding",
    "permit-pty",
    "permit-user-rc",
)


class CaKeyProblem(Exception):
    """The CA key file is unreadable, malformed or open to others; the message says what
    to do."""


@dataclass(frozen=True)
class SignedCertificate:
    """An OpenSSH user certificate, one line (`ssh-ed25519-cert-v01@openssh.com AAAA...`)."""

    line: str
    serial: int
    key_id: str
    principals: tuple[str, ...]
    valid_after: datetime
    valid_before: datetime


def ca_key_file(state_dir: Path) -> Path:
    """Where the CA's private key lives (mode 0600); the public key is next to it
    (`.pub`)."""
    return state_dir / CA_KEY_NAME


def public_key(state_dir: Path) -> str | None:
    """The CA's public key in OpenSSH form (`ssh-ed25519 AAAA... fabriek-ssh-ca`), or None
    until the factory has one."""
    path = ca_key_file(state_dir).with_name(CA_KEY_NAME + ".pub")
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def new_serial() -> int:
    """A random 63-bit serial (positive as a signed 64-bit number, so any database column
    holds it)."""
    return secrets.randbits(63) or 1


def _read(path: Path) -> Ed25519PrivateKey | None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CaKeyProblem(
            f"the SSH CA key file {path} may be read by others "
            f"(mode {stat.S_IMODE(mode):04o}); run `chmod 600 {path}`"
        )
    try:
        key = serialization.load_ssh_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise CaKeyProblem(f"cannot read the SSH CA key file {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CaKeyProblem(f"the SSH CA key file {path} must hold an Ed25519 key")
    return key


def _write_new(path: Path) -> Ed25519PrivateKey:
    """Write a fresh key, aside and linked in, so no reader sees half a key; when another
    process won the race, its key."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    aside = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(private)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(aside, path)
        except FileExistsError:
            existing = _read(path)
            if existing is None:  # pragma: no cover - removed between link and read
                raise CaKeyProblem(f"the SSH CA key file {path} vanished") from None
            key = existing
            public = key.public_key().public_bytes(
                serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
            )
    finally:
        aside.unlink(missing_ok=True)
    # The public half is written after the private one exists: `public_key` never names a
    # key that cannot sign.
    pub_path = path.with_name(path.name + ".pub")
    pub_aside = pub_path.with_name(f".{pub_path.name}.{secrets.token_hex(8)}")
    pub_aside.write_text(public.decode() + " fabriek-ssh-ca\n")
    pub_aside.chmod(0o644)
    os.replace(pub_aside, pub_path)
    return key


def signing_key(state_dir: Path) -> Ed25519PrivateKey:
    """The CA's private key, made on first use."""
    path = ca_key_file(state_dir)
    key = _read(path)
    if key is None:
        return _write_new(path)
    if public_key(state_dir) is None:
        # The private key exists but its public half was lost: write it again.
        pub = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        path.with_name(path.name + ".pub").write_text(pub.decode() + " fabriek-ssh-ca\n")
    return key


def ensure(state_dir: Path) -> str:
    """Make the CA key pair if there is none yet; its public key."""
    signing_key(state_dir)
    found = public_key(state_dir)
    assert found is not None  # written by signing_key
    return found


def sign_user_certificate(
    state_dir: Path,
    subject: SSHCertPublicKeyTypes,
    *,
    principals: tuple[str, ...],
    key_id: str,
    serial: int,
    valid_after: datetime,
    valid_before: datetime,
) -> SignedCertificate:
    """Sign `subject` (a person's public key) as an OpenSSH user certificate for exactly
    `principals`, valid from `valid_after` to `valid_before` (aware datetimes). Refuses
    (ValueError) no principals, a repeated principal, or an empty validity: a certificate
    without principals would be good for any account."""
    if not principals:
        raise ValueError("a user certificate needs at least one principal")
    if len(set(principals)) != len(principals):
        raise ValueError("a principal is repeated")
    if valid_before <= valid_after:
        raise ValueError("the certificate's validity is empty")
    builder = (
        SSHCertificateBuilder()
        .public_key(subject)
        .serial(serial)
        .type(SSHCertificateType.USER)
        .key_id(key_id.encode())
        .valid_principals([p.encode() for p in principals])
        .valid_after(int(valid_after.timestamp()))
        .valid_before(int(valid_before.timestamp()))
    )
    for name in USER_EXTENSIONS:
        builder = builder.add_extension(name.encode(), b"")
    cert = builder.sign(signing_key(state_dir))
    line = cert.public_bytes().decode()
    return SignedCertificate(
        line=f"{line} {key_id}",
        serial=serial,
        key_id=key_id,
        principals=principals,
        valid_after=valid_after,
        valid_before=valid_before,
    )
