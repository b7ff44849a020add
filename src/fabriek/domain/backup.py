"""A backup's manifest: what a backup folder holds and how to check it, as plain values.

A backup folder holds the database (an SQLite file made with SQLite's online backup, or a
`pg_dump` archive in its custom format taken from one snapshot), the dataset store's
ciphertext objects the database names, and `manifest.json`: the versions, the schema
revision, a SHA-256 and size per file, and the ids of the master keys that wrapped the
organisation keys. The master key itself is never in a backup: it is kept apart, and
restoring needs it supplied.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from fabriek.domain.errors import InvalidInput

FORMAT = 1
MANIFEST = "manifest.json"
OBJECTS = "objects"  # the folder of ciphertext objects, as in the dataset store
DATABASE_FILES = {"sqlite": "database.sqlite", "postgresql": "database.pgdump"}
_SHA256 = re.compile(r"[0-9a-f]{64}")
_OBJECT = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class FileSum:
    """One file of the backup: its path inside the folder, size and SHA-256."""

    path: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """What a backup holds (see the module's docstring)."""

    fabriek_version: str
    created_at: str  # ISO 8601, UTC
    database_kind: str  # "sqlite" or "postgresql"
    schema_revision: str | None
    database: FileSum
    objects: tuple[FileSum, ...] = ()
    master_key_ids: tuple[str, ...] = ()
    format: int = FORMAT
    master_key_included: bool = False
    notes: tuple[str, ...] = field(default=())

    def files(self) -> tuple[FileSum, ...]:
        """Every file the backup must hold, the database first."""
        return (self.database, *self.objects)


def object_path(name: str) -> str:
    """Where an object lives inside the backup (as in the store: objects/NA/NAME)."""
    if not _OBJECT.fullmatch(name):
        raise InvalidInput(f"not an object name: {name!r}")
    return f"{OBJECTS}/{name[:2]}/{name}"


def object_name(path: str) -> str:
    """The object name of a manifest path made by `object_path`."""
    name = path.rsplit("/", 1)[-1]
    if object_path(name) != path:
        raise InvalidInput(f"the manifest names an object at an odd path: {path!r}")
    return name


def to_json(manifest: Manifest) -> str:
    """The manifest as the JSON written into the backup."""

    def one(f: FileSum) -> dict[str, Any]:
        return {"path": f.path, "bytes": f.bytes, "sha256": f.sha256}

    return json.dumps(
        {
            "format": manifest.format,
            "fabriek_version": manifest.fabriek_version,
            "created_at": manifest.created_at,
            "database_kind": manifest.database_kind,
            "schema_revision": manifest.schema_revision,
            "database": one(manifest.database),
            "objects": [one(o) for o in manifest.objects],
            "master_key_ids": list(manifest.master_key_ids),
            "master_key_included": manifest.master_key_included,
            "notes": list(manifest.notes),
        },
        indent=1,
    )


def _file(raw: Any, what: str) -> FileSum:
    if not isinstance(raw, dict):
        raise InvalidInput(f"the manifest's {what} is not an object")
    path, size, digest = raw.get("path"), raw.get("bytes"), raw.get("sha256")
    if not isinstance(path, str) or not path or path.startswith("/") or ".." in path.split("/"):
        raise InvalidInput(f"the manifest's {what} has no safe path: {path!r}")
    if not isinstance(size, int) or size < 0:
        raise InvalidInput(f"the manifest's {what} has no size")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise InvalidInput(f"the manifest's {what} has no SHA-256")
    return FileSum(path, size, digest)


def from_json(text: str) -> Manifest:
    """Parse and check a manifest; InvalidInput names what is wrong."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"the manifest is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidInput("the manifest is not a JSON object")
    if raw.get("format") != FORMAT:
        raise InvalidInput(
            f"backup format {raw.get('format')!r} is not one this Fabriek reads ({FORMAT})"
        )
    kind = raw.get("database_kind")
    if kind not in DATABASE_FILES:
        raise InvalidInput(f"the manifest names an unknown database kind: {kind!r}")
    objects = raw.get("objects")
    if not isinstance(objects, list):
        raise InvalidInput("the manifest's objects are not a list")
    manifest = Manifest(
        fabriek_version=str(raw.get("fabriek_version", "")),
        created_at=str(raw.get("created_at", "")),
        database_kind=kind,
        schema_revision=raw.get("schema_revision"),
        database=_file(raw.get("database"), "database"),
        objects=tuple(_file(o, "object") for o in objects),
        master_key_ids=tuple(str(k) for k in raw.get("master_key_ids", [])),
        master_key_included=bool(raw.get("master_key_included", False)),
        notes=tuple(str(n) for n in raw.get("notes", [])),
    )
    for o in manifest.objects:
        object_name(o.path)
    if manifest.master_key_included:
        raise InvalidInput("this backup says it holds a master key: Fabriek never makes one so")
    return manifest
