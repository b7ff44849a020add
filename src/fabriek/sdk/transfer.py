"""Moving dataset bytes: hashing a file, streaming it up in blocks, and receiving a download
into a temporary file that becomes the destination only once its SHA-256 checks out."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from fabriek.sdk.errors import TransferFailed

__all__ = ["BLOCK_BYTES", "Progress", "TransferFailed", "file_blocks", "file_sha256", "receive"]

BLOCK_BYTES = 1024 * 1024

Progress = Callable[[int], None]


def file_sha256(path: Path, progress: Progress | None = None) -> str:
    """The SHA-256 (hex) of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(BLOCK_BYTES):
            digest.update(block)
            if progress:
                progress(len(block))
    return digest.hexdigest()


def file_blocks(path: Path, progress: Progress | None = None) -> Iterator[bytes]:
    """A file's bytes in blocks, as an upload body (never the whole file in memory)."""
    with path.open("rb") as source:
        while block := source.read(BLOCK_BYTES):
            yield block
            if progress:
                progress(len(block))


def receive(response: httpx.Response, dest: Path, progress: Progress | None = None) -> str:
    """Stream a download's body into a temporary file beside `dest`, check it against the
    SHA-256 the server declared (`X-Content-SHA256`), then rename it to `dest`. On any
    failure nothing is left and `dest` is untouched. Returns the SHA-256."""
    expected = response.headers.get("x-content-sha256", "")
    dest = dest.resolve()
    aside = dest.with_name(f".{dest.name}.part-{secrets.token_hex(4)}")
    digest = hashlib.sha256()
    try:
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            for block in response.iter_bytes():
                digest.update(block)
                out.write(block)
                if progress:
                    progress(len(block))
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != expected:
            raise TransferFailed(
                f"the data received has SHA-256 {actual}, not the {expected or 'undeclared'} "
                "the server declared; nothing was written: pull again"
            )
        os.replace(aside, dest)
    except BaseException:
        aside.unlink(missing_ok=True)
        raise
    return actual
