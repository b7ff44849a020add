"""Envelope encryption of datasets at rest: AES-256-GCM throughout.

    master key (a file outside the database)
      └─ wraps each organisation key (one current version per organisation, rotatable)
           └─ wraps each dataset version's own data key
                └─ encrypts that version's data, chunk by chunk

A version's ciphertext is a header (magic, format, chunk size) followed by records, one per
chunk of plaintext: a random 96-bit nonce, then the chunk sealed with AES-256-GCM. The
associated data of every chunk binds the header, the object's name, the chunk's index and
whether it is the last one, so chunks cannot be reordered, swapped between objects, dropped
from the end or the file cut short without decryption failing.

Keys are `Secret`s whose repr never shows the material, so a stray log line cannot leak one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import stat
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
CHUNK_BYTES = 1024 * 1024
MAGIC = b"FBKD"
FORMAT = 1
_HEADER = struct.Struct(">4sBI")  # magic, format, plaintext bytes per chunk
HEADER_BYTES = _HEADER.size


class Secret:
    """Key material: compared in constant time, never shown by repr or str."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes) -> None:
        if len(value) != KEY_BYTES:
            raise ValueError(f"a key has {KEY_BYTES} bytes")
        self._value = value

    def reveal(self) -> bytes:
        """The raw bytes, for the cipher only."""
        return self._value

    def __repr__(self) -> str:
        return "Secret(<hidden>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return id(self)


class Undecryptable(Exception):
    """Ciphertext or a wrapped key failed authentication: altered, truncated, or the key is
    not the one it was sealed with."""


def new_key() -> Secret:
    """A fresh random AES-256 key."""
    return Secret(AESGCM.generate_key(bit_length=256))


# --- wrapping keys -----------------------------------------------------------------------------


def wrap(kek: Secret, key: Secret, context: str) -> bytes:
    """`key` sealed under the key-encryption key `kek`; `context` (what the key is for) is
    bound, so a wrapped key copied to another row does not unwrap there."""
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(kek.reveal()).encrypt(nonce, key.reveal(), _wrap_aad(context))
    return nonce + sealed


def unwrap(kek: Secret, wrapped: bytes, context: str) -> Secret:
    """The key `wrap` sealed; Undecryptable when `kek` or `context` are not the ones used."""
    nonce, sealed = wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:]
    try:
        return Secret(AESGCM(kek.reveal()).decrypt(nonce, sealed, _wrap_aad(context)))
    except (InvalidTag, ValueError):
        raise Undecryptable(f"the key for {context} does not unwrap") from None


def _wrap_aad(context: str) -> bytes:
    return b"fabriek key wrap v1|" + context.encode()


def organisation_key_context(organisation_id: int, version: int) -> str:
    return f"organisation {organisation_id} key version {version}"


def data_key_context(object_name: str) -> str:
    return f"data key of object {object_name}"


def key_id(master: Secret) -> str:
    """A public name of the master key (not the key): which one wrapped an organisation key,
    so a server started with the wrong key file says so instead of failing obscurely."""
    return hmac.new(master.reveal(), b"fabriek master key id", hashlib.sha256).hexdigest()[:16]


# --- sealing data in chunks --------------------------------------------------------------------


def header(chunk_bytes: int = CHUNK_BYTES) -> bytes:
    return _HEADER.pack(MAGIC, FORMAT, chunk_bytes)


def _chunk_aad(head: bytes, object_name: str, index: int, last: bool) -> bytes:
    return head + object_name.encode() + struct.pack(">QB", index, 1 if last else 0)


class Sealer:
    """Encrypts one object's plaintext chunk by chunk, in order."""

    def __init__(self, data_key: Secret, object_name: str, chunk_bytes: int = CHUNK_BYTES) -> None:
        self._aead = AESGCM(data_key.reveal())
        self._object = object_name
        self.chunk_bytes = chunk_bytes
        self.header = header(chunk_bytes)
        self._index = 0
        self._done = False

    def seal(self, plaintext: bytes | memoryview, last: bool) -> tuple[bytes, bytes]:
        """The record of the next chunk, as its two parts: the nonce, and the ciphertext with
        its tag (written one after the other, never joined: no copy of a MiB). Every chunk
        but the last holds exactly `chunk_bytes`."""
        if self._done:
            raise ValueError("the last chunk was already sealed")
        if len(plaintext) > self.chunk_bytes or (not last and len(plaintext) != self.chunk_bytes):
            raise ValueError("chunks before the last hold exactly chunk_bytes")
        nonce = os.urandom(NONCE_BYTES)
        aad = _chunk_aad(self.header, self._object, self._index, last)
        self._index += 1
        self._done = last
        return nonce, self._aead.encrypt(nonce, plaintext, aad)


def open_sealed(data_key: Secret, object_name: str, source: BinaryIO) -> Iterator[bytes]:
    """The plaintext of a sealed object, chunk by chunk; Undecryptable (raised while
    iterating) at the first chunk that was altered, moved, dropped or cut."""
    head = source.read(HEADER_BYTES)
    if len(head) != HEADER_BYTES:
        raise Undecryptable(f"object {object_name} has no complete header")
    magic, fmt, chunk_bytes = _HEADER.unpack(head)
    if magic != MAGIC or fmt != FORMAT or not 0 < chunk_bytes <= 64 * CHUNK_BYTES:
        raise Undecryptable(f"object {object_name} is not a Fabriek dataset object")
    aead = AESGCM(data_key.reveal())
    record = NONCE_BYTES + chunk_bytes + TAG_BYTES
    index = 0
    current = source.read(record)
    while True:
        # One record ahead: only the end of the file says a chunk is the last.
        following = source.read(record) if len(current) == record else b""
        last = not following
        if len(current) < NONCE_BYTES + TAG_BYTES:
            raise Undecryptable(f"object {object_name} is cut short at chunk {index}")
        nonce, sealed = current[:NONCE_BYTES], current[NONCE_BYTES:]
        try:
            plain = aead.decrypt(nonce, sealed, _chunk_aad(head, object_name, index, last))
        except InvalidTag:
            raise Undecryptable(
                f"chunk {index} of object {object_name} fails authentication "
                "(altered, reordered or cut short)"
            ) from None
        yield plain
        if last:
            return
        current, index = following, index + 1


# --- the master key file -----------------------------------------------------------------------


class MasterKeyProblem(Exception):
    """The master key file is missing where it must exist, unreadable, malformed or open to
    others; the message says what to do."""


def read_master_key(path: Path) -> Secret | None:
    """The master key in `path` (base64 of 32 bytes), or None when there is no such file."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise MasterKeyProblem(
            f"the master key file {path} may be read by others (mode {stat.S_IMODE(mode):04o}); "
            f"run `chmod 600 {path}`"
        )
    try:
        raw = base64.b64decode(path.read_text().strip(), validate=True)
    except (OSError, ValueError) as exc:
        raise MasterKeyProblem(f"cannot read the master key file {path}: {exc}") from None
    if len(raw) != KEY_BYTES:
        raise MasterKeyProblem(
            f"the master key file {path} must hold {KEY_BYTES} bytes in base64; it holds {len(raw)}"
        )
    return Secret(raw)


def create_master_key(path: Path) -> Secret:
    """Write a new random master key to `path` (mode 0600), unless one appeared meanwhile
    (another process): then that one. Written aside and linked in, so no reader ever sees a
    half-written key."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = new_key()
    aside = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(base64.b64encode(key.reveal()).decode() + "\n")
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(aside, path)
        except FileExistsError:
            existing = read_master_key(path)
            if existing is None:  # pragma: no cover - removed between link and read
                raise MasterKeyProblem(f"the master key file {path} vanished") from None
            return existing
    finally:
        aside.unlink(missing_ok=True)
    return key
