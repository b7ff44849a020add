"""`fabriek ssh-key` (add, list, remove one's public keys) and `fabriek ssh cert` (a
short-lived certificate from the factory's SSH certificate authority, written next to the
key as `ssh` looks for it: `id_ed25519.pub` -> `id_ed25519-cert.pub`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from fabriek.cli.app import JsonFlag, app
from fabriek.cli.connection import client
from fabriek.cli.output import console, print_json, print_table

key_app = typer.Typer(
    name="ssh-key",
    help="Your SSH public keys for the login nodes: `add`, `list`, `remove`.",
    no_args_is_help=True,
)
ssh_app = typer.Typer(
    name="ssh",
    help="SSH access: `fabriek ssh cert` signs your key for the login nodes.",
    no_args_is_help=True,
)
app.add_typer(key_app)
app.add_typer(ssh_app)

DEFAULT_KEY = Path("~/.ssh/id_ed25519.pub")


def _read_key(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    path = Path(source).expanduser()
    try:
        return path.read_text()
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}") from None


@key_app.command("add")
def add(
    source: Annotated[
        str, typer.Argument(help="a public key file (e.g. ~/.ssh/id_ed25519.pub), or - for stdin")
    ],
) -> None:
    """Register a public key; the login nodes accept it from your next login."""
    text = _read_key(source)
    with client() as c:
        key = c.ssh.add_key(text)
    console.print(
        f"key {key.id} registered: {key.key_type} {key.bits} bits {key.fingerprint} {key.comment}",
        markup=False,
    )


@key_app.command("list")
def list_keys(
    include_revoked: Annotated[bool, typer.Option("--all", help="revoked keys too")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Your registered public keys."""
    with client() as c:
        found = c.ssh.keys(include_revoked)
    if as_json:
        print_json(found)
        return
    rows = [
        (k.id, k.key_type, k.bits, k.fingerprint, k.comment, f"{k.created_at:%Y-%m-%d %H:%M}",
         f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "-")
        for k in found
    ]  # fmt: skip
    print_table(
        None,
        ["#ID", "TYPE", "#BITS", "FINGERPRINT", "COMMENT", "ADDED (UTC)", "REVOKED (UTC)"],
        rows,
        f"{len(found)} key(s)",
    )


@key_app.command("remove")
def remove(
    key_id: Annotated[int, typer.Argument(help="the key's number (`fabriek ssh-key list`)")],
) -> None:
    """Revoke one of your keys; the login nodes refuse it from the next login."""
    with client() as c:
        key = c.ssh.remove_key(key_id)
    console.print(f"key {key.id} ({key.fingerprint}) revoked", markup=False)


@ssh_app.command("cert")
def cert(
    key: Annotated[
        Path, typer.Option("--key", help="your public key; the certificate goes next to it")
    ] = DEFAULT_KEY,
    hours: Annotated[
        float, typer.Option("--hours", min=0.01, max=24, help="how long it is valid")
    ] = 8,
) -> None:
    """Get a certificate for your key, valid for some hours, and write it as
    `<key>-cert.pub`: `ssh` then offers it by itself."""
    public = key.expanduser()
    text = _read_key(str(public))
    with client() as c:
        signed = c.ssh.certificate(text, hours)
    stem = public.name.removesuffix(".pub")
    target = public.with_name(f"{stem}-cert.pub")
    target.write_text(signed.certificate + "\n")
    console.print(
        f"certificate written to {target}: {', '.join(signed.principals)}, "
        f"valid {signed.valid_after:%Y-%m-%d %H:%M} to {signed.valid_before:%Y-%m-%d %H:%M} UTC, "
        f"serial {signed.serial}",
        markup=False,
    )
