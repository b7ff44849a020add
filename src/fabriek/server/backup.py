"""`fabriek backup` and `fabriek restore`: the operator's commands, run on the server's machine
with its settings (FABRIEK_DATABASE_URL, FABRIEK_STATE_DIR, ...), while the server runs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from fabriek.cli.output import console
from fabriek.domain.errors import InvalidInput
from fabriek.services.backup import restore_backup, take_backup
from fabriek.settings import Settings
from fabriek.store.db import StoreError


def backup(
    destination: Annotated[Path, typer.Argument(help="a new folder to hold the backup")],
) -> None:
    """Copy the database and the dataset store, consistently, while the server runs.
    The master key is not copied: keep it apart (see docs/operations.md)."""
    manifest = take_backup(Settings(), destination, datetime.now(UTC))
    size = sum(f.bytes for f in manifest.files())
    console.print(
        f"Backed up the {manifest.database_kind} store (schema {manifest.schema_revision}) "
        f"and {len(manifest.objects)} dataset object(s), {size / 1e6:.1f} MB, into {destination}"
    )
    for note in manifest.notes:
        console.print(f"  note: {note}")
    if manifest.master_key_ids:
        console.print(
            f"Restoring it needs the master key {', '.join(manifest.master_key_ids)}, "
            "which is not in the backup."
        )


def restore(
    source: Annotated[Path, typer.Argument(help="a backup folder made by `fabriek backup`")],
    master_key: Annotated[
        Path | None,
        typer.Option("--master-key", help="the master key file, kept apart from the backup"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the outcome as JSON")] = False,
) -> None:
    """Restore a backup into a fresh, empty database and state folder (this machine's
    settings); upgrade its schema, check the master key and the audit chain."""
    if master_key is not None and not master_key.is_file():
        raise InvalidInput(f"no master key file at {master_key}")
    done = restore_backup(Settings(), source, master_key)
    if as_json:
        print(json.dumps({
            "schema_revision": done.revision, "objects": done.objects,
            "master_key": done.master_key, "audit_entries": done.audit_entries,
            "audit_break": done.audit_break,
        }))  # fmt: skip
    else:
        console.print(
            f"Restored the backup of {done.manifest.created_at}: schema {done.revision}, "
            f"{done.objects} dataset object(s); master key: {done.master_key}; "
            f"audit trail: {done.audit_entries} entries, "
            f"{'whole' if done.audit_break is None else 'BROKEN at ' + done.audit_break}"
        )
    if done.audit_break is not None:
        raise StoreError(f"the restored audit trail is broken at {done.audit_break}")


def register(app: typer.Typer) -> None:
    """Add `backup` and `restore` to the `fabriek` command."""
    app.command()(backup)
    app.command()(restore)
