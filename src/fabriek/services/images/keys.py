"""The key Fabriek signs registry tokens with, and the certificate the registry trusts.

Both live in the state folder (which no job can read): `registry/token.key` (PEM, mode 0600)
and `registry/token.crt`, a self-signed certificate the registry's `auth.token.rootcertbundle`
names. Made on first use; kept across restarts, so the registry's configuration stays valid.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from joserfc.jwk import ECKey

KEY_FILE = "token.key"
CERT_FILE = "token.crt"


def registry_dir(state_dir: Path) -> Path:
    """Where the token key and certificate are kept."""
    return state_dir / "registry"


def libtrust_key_id(public: ec.EllipticCurvePublicKey) -> str:
    """The key's id as the registry computes it (docker/libtrust): base32 of the first 240
    bits of the SHA-256 of its DER public key, in groups of four joined by ':'."""
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    text = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    return ":".join(text[i : i + 4] for i in range(0, len(text), 4))


@dataclass(frozen=True)
class SigningKey:
    """The token key, its libtrust id and the certificate's path."""

    key: ECKey
    kid: str
    certificate: Path


def _new_certificate(private: ec.EllipticCurvePrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Fabriek registry token issuer")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def load_signing_key(state_dir: Path) -> SigningKey:
    """The token key (made, with its certificate, when there is none yet)."""
    folder = registry_dir(state_dir)
    key_path, cert_path = folder / KEY_FILE, folder / CERT_FILE
    if not key_path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        private = ec.generate_private_key(ec.SECP256R1())
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # Written aside and renamed: two processes starting at once never read half a key.
        tmp = folder / f".{KEY_FILE}.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        cert_tmp = folder / f".{CERT_FILE}.{os.getpid()}"
        cert_tmp.write_bytes(_new_certificate(private))
        try:
            os.link(tmp, key_path)  # fails if another process won the race: use theirs
            os.replace(cert_tmp, cert_path)
        except FileExistsError:
            cert_tmp.unlink()
        tmp.unlink()
    pem = key_path.read_bytes()
    loaded = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_path} is not an EC private key")
    if not cert_path.exists():
        cert_path.write_bytes(_new_certificate(loaded))
    return SigningKey(ECKey.import_key(pem), libtrust_key_id(loaded.public_key()), cert_path)
