"""SSH public keys people register, and the rules for the certificates the factory signs.

Pure: a public key line in OpenSSH form (`ssh-ed25519 AAAA... comment`) is read here, by
hand, into its type, size, SHA256 fingerprint (as `ssh-keygen -l` prints it) and comment,
and refused with a reason a person can act on when it is of a type or size the login nodes
must not trust, not a public key at all, or a private key pasted by mistake.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from fabriek.domain.errors import Forbidden, InvalidInput

# Type -> bits, for the types whose size is fixed by the type.
_FIXED_BITS = {
    "ssh-ed25519": 256,
    "sk-ssh-ed25519@openssh.com": 256,
    "ecdsa-sha2-nistp256": 256,
    "ecdsa-sha2-nistp384": 384,
    "ecdsa-sha2-nistp521": 521,
}
_CURVES = {
    "ecdsa-sha2-nistp256": "nistp256",
    "ecdsa-sha2-nistp384": "nistp384",
    "ecdsa-sha2-nistp521": "nistp521",
}
ACCEPTED_TYPES = (*_FIXED_BITS, "ssh-rsa")
MIN_RSA_BITS = 3072
MAX_LINE = 16_384
FIELD = "public_key"

# Certificates: how long one is valid unless asked otherwise, and at most.
DEFAULT_CERT_HOURS = 8
MAX_CERT_HOURS = 24
# Started this much before it is signed, for login nodes whose clock is a little behind.
CLOCK_SKEW = timedelta(minutes=1)

_POSIX_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class PublicKey:
    """A public key as `ssh-keygen -l` describes it, and its line without the comment."""

    key_type: str
    bits: int
    fingerprint: str
    comment: str
    blob: bytes

    @property
    def line(self) -> str:
        """The key in OpenSSH form, with its comment when it has one."""
        body = f"{self.key_type} {base64.b64encode(self.blob).decode()}"
        return f"{body} {self.comment}" if self.comment else body


def _refuse(message: str) -> InvalidInput:
    return InvalidInput.on(FIELD, message)


def _strings(blob: bytes) -> list[bytes]:
    """The length-prefixed strings of an SSH wire blob (RFC 4251), all of them."""
    out: list[bytes] = []
    at = 0
    while at < len(blob):
        if at + 4 > len(blob):
            raise ValueError("truncated length")
        size = int.from_bytes(blob[at : at + 4], "big")
        at += 4
        if size > len(blob) - at:
            raise ValueError("truncated string")
        out.append(blob[at : at + size])
        at += size
    return out


def fingerprint(blob: bytes) -> str:
    """The key's SHA256 fingerprint as OpenSSH prints it (`SHA256:` and unpadded base64)."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _bits(key_type: str, parts: list[bytes]) -> int:
    if key_type == "ssh-rsa":
        if len(parts) != 3:
            raise ValueError("an RSA key has an exponent and a modulus")
        return int.from_bytes(parts[2], "big").bit_length()
    curve = _CURVES.get(key_type)
    if curve is not None and (len(parts) != 3 or parts[1] != curve.encode()):
        raise ValueError(f"an {key_type} key names the curve {curve}")
    if key_type in ("ssh-ed25519", "sk-ssh-ed25519@openssh.com") and len(parts[1]) != 32:
        raise ValueError("an Ed25519 key is 32 bytes")
    return _FIXED_BITS[key_type]


def parse_public_key(text: str) -> PublicKey:
    """Read one OpenSSH public key line; InvalidInput naming what is wrong and what to send
    instead when it is not one the login nodes may trust."""
    line = text.strip()
    if "PRIVATE KEY" in line:
        raise _refuse(
            "this is a private key, which must never leave your computer: send the public "
            "key (the .pub file, e.g. ~/.ssh/id_ed25519.pub); and since it was pasted, "
            "consider it exposed and make a new pair with `ssh-keygen -t ed25519`"
        )
    if not line:
        raise _refuse("empty: send the public key, e.g. the content of ~/.ssh/id_ed25519.pub")
    if len(line) > MAX_LINE or "\n" in line:
        raise _refuse("send one public key, on one line")
    fields = line.split(None, 2)
    if len(fields) < 2:
        raise _refuse(
            "not an OpenSSH public key: expected '<type> <base64> [comment]', "
            "as in ~/.ssh/id_ed25519.pub"
        )
    key_type, encoded = fields[0], fields[1]
    comment = fields[2].strip() if len(fields) == 3 else ""
    if key_type == "ssh-dss":
        raise _refuse(
            "DSA (ssh-dss) keys are refused: they are 1024 bits with SHA-1 and OpenSSH "
            "no longer accepts them; make an Ed25519 key with `ssh-keygen -t ed25519`"
        )
    if key_type.endswith("-cert-v01@openssh.com"):
        raise _refuse(
            "this is an SSH certificate, not a key: register the public key it was made for"
        )
    if key_type not in ACCEPTED_TYPES:
        raise _refuse(
            f"keys of type {key_type[:60]!r} are not accepted; accepted: "
            + ", ".join(ACCEPTED_TYPES)
        )
    try:
        blob = base64.b64decode(encoded, validate=True)
        parts = _strings(blob)
        if not parts or parts[0] != key_type.encode():
            raise ValueError(f"the key inside is not of type {key_type}")
        bits = _bits(key_type, parts)
    except (binascii.Error, ValueError) as exc:
        raise _refuse(f"not a valid {key_type} public key ({exc}); copy the whole line") from None
    if key_type == "ssh-rsa" and bits < MIN_RSA_BITS:
        raise _refuse(
            f"this RSA key has {bits} bits; at least {MIN_RSA_BITS} are required: make an "
            "Ed25519 key with `ssh-keygen -t ed25519` (or RSA with -b 4096)"
        )
    return PublicKey(key_type, bits, fingerprint(blob), comment[:200], blob)


def is_posix_name(name: str) -> bool:
    """Whether `name` is a portable Unix username (lower case, at most 32 characters)."""
    return bool(_POSIX_NAME.match(name))


def certificate_window(now: datetime, hours: float | None) -> tuple[datetime, datetime]:
    """From when to when a certificate asked for now is valid: started a minute back (for
    clock skew), ending `hours` from now (default 8, at most 24)."""
    wanted = DEFAULT_CERT_HOURS if hours is None else hours
    if not 0 < wanted <= MAX_CERT_HOURS:
        raise InvalidInput.on(
            "hours", f"a certificate is valid for more than 0 and at most {MAX_CERT_HOURS} hours"
        )
    return now - CLOCK_SKEW, now + timedelta(hours=wanted)


def check_principals(asked: tuple[str, ...] | None, own: str) -> tuple[str, ...]:
    """The principals to sign: only the person's own POSIX username. Asking for any other
    is Forbidden, naming it."""
    if not asked:
        return (own,)
    others = sorted({p for p in asked if p != own})
    if others:
        raise Forbidden(
            f"you may only get a certificate for your own username {own!r}, "
            f"not for {', '.join(repr(p) for p in others)}"
        )
    return (own,)


def certificate_key_id(username: str, serial: int) -> str:
    """The key id written into a certificate (and sshd's log at each login)."""
    return f"fabriek:{username}:{serial}"
