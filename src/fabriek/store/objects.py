"""The site's storage for dataset ciphertext: a directory (the embedded default).

    ROOT/incoming/NAME.part   an upload being received (locked by the process writing it)
    ROOT/objects/NA/NAME      a stored object, published by an atomic rename

An upload holds an exclusive `flock` on its file from creation until its database row is
committed (or it is discarded). The lock dies with the process, so after a `kill -9` the
sweep can tell a live upload (locked, in this or another server process) from a leftover
(unlocked) and removes only leftovers; an object no database row names is never a dataset.
"""

from __future__ import annotations

import fcntl
import os
import re
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from fabriek.store.db import StoreError

_NAME = re.compile(r"[0-9a-f]{32}")


def new_object_name() -> str:
    """A fresh, unguessable object name (it says nothing about the dataset)."""
    return uuid.uuid4().hex


def _check(name: str) -> str:
    # Names come from the database; never let one steer a path elsewhere.
    if not _NAME.fullmatch(name):
        raise ValueError(f"not an object name: {name!r}")
    return name


def _try_lock(path: Path) -> BinaryIO | None:
    """The file opened and exclusively locked, or None when someone holds it (or it is gone)."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Incoming:
    """One upload's ciphertext on its way in: written, then published or discarded."""

    def __init__(self, store: ObjectStore, name: str) -> None:
        self.name = name
        self._store = store
        self._path = store.incoming / f"{name}.part"
        fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file = os.fdopen(fd, "wb", buffering=0)
        fcntl.flock(fd, fcntl.LOCK_EX)
        # A sweep in another process may have taken the file in the instant between its
        # creation and the lock: then it is no longer at its path, and the upload says so.
        try:
            still_ours = os.stat(self._path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            still_ours = False
        if not still_ours:
            self._file.close()
            raise StoreError("another server process was cleaning up uploads just then; push again")

    def write(self, *parts: bytes) -> None:
        """Append the parts, in order, with as few system calls as the kernel allows."""
        pending = [memoryview(p) for p in parts if p]
        fd = self._file.fileno()
        while pending:
            done = os.writev(fd, pending)
            while pending and done >= len(pending[0]):
                done -= len(pending[0])
                pending.pop(0)
            if pending and done:
                pending[0] = pending[0][done:]

    def publish(self) -> None:
        """Make the object durable and move it into place (atomically); the lock stays until
        `close`, so the sweep leaves it alone until its row is committed."""
        os.fsync(self._file.fileno())
        final = self._store.path_of(self.name)
        final.parent.mkdir(exist_ok=True)
        os.replace(self._path, final)
        _fsync_dir(final.parent)
        self._path = final

    def discard(self) -> None:
        """Remove what was written (published or not) and let go."""
        self._path.unlink(missing_ok=True)
        self.close()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()  # closing the descriptor releases the lock


@dataclass(frozen=True)
class Swept:
    """What a sweep removed: leftover uploads and objects no row names."""

    incoming: int
    orphans: int


class ObjectStore:
    """Ciphertext objects under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.incoming = root / "incoming"
        self.objects = root / "objects"

    def prepare(self) -> None:
        for folder in (self.root, self.incoming, self.objects):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)

    def path_of(self, name: str) -> Path:
        _check(name)
        return self.objects / name[:2] / name

    def receive(self, name: str) -> Incoming:
        """Start writing a new object (in `incoming/`, locked)."""
        self.prepare()
        return Incoming(self, _check(name))

    def open(self, name: str) -> BinaryIO:
        """A stored object for reading; FileNotFoundError when it is not there."""
        return self.path_of(name).open("rb")

    def remove(self, name: str) -> None:
        """Delete an object's ciphertext (its key is already gone with its row)."""
        self.path_of(name).unlink(missing_ok=True)

    def names(self) -> list[str]:
        """Every stored object's name."""
        if not self.objects.is_dir():
            return []
        return [
            p.name for d in self.objects.iterdir() if d.is_dir() for p in d.iterdir()
            if _NAME.fullmatch(p.name)
        ]  # fmt: skip

    def sweep(self, known: Callable[[Collection[str]], set[str]]) -> Swept:
        """Remove leftover uploads (unlocked files in `incoming/`) and objects that no row
        names (`known(names)` says which are named), skipping any an upload still holds."""
        leftovers = 0
        if self.incoming.is_dir():
            for part in self.incoming.iterdir():
                handle = _try_lock(part)
                if handle is not None:
                    part.unlink(missing_ok=True)
                    handle.close()
                    leftovers += 1
        orphans = 0
        stored = self.names()
        named = known(stored)
        for name in stored:
            if name in named:
                continue
            path = self.path_of(name)
            handle = _try_lock(path)
            if handle is None:
                continue
            # Asked again under the lock: an upload commits its row before letting go.
            if name not in known([name]):
                path.unlink(missing_ok=True)
                orphans += 1
            handle.close()
        return Swept(leftovers, orphans)
