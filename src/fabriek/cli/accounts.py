"""`fabriek account`: one's POSIX identity on every site (username, UID, groups)."""

from __future__ import annotations

from fabriek.cli.app import JsonFlag, app
from fabriek.cli.connection import client
from fabriek.cli.output import console, print_json, print_table


@app.command()
def account(as_json: JsonFlag = False) -> None:
    """Your Unix account on every site: username, UID, and your projects' groups (each
    also the Slurm account of its project)."""
    with client() as c:
        mine = c.accounts.me()
    if as_json:
        print_json(mine)
        return
    console.print(
        f"{mine.username}: uid {mine.uid}, gid {mine.gid} ({mine.username})", markup=False
    )
    rows = [(g.name, g.gid, g.project) for g in mine.groups]
    print_table(None, ["GROUP (SLURM ACCOUNT)", "GID", "PROJECT"], rows, f"{len(rows)} group(s)")
