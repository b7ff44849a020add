"""`fabriek suspend` and `fabriek resume`: an admin stops new work of a person, a project
or an allocation (no new jobs, no logins at the sites, a Slurm limit of 0), and lifts it."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from fabriek.cli.app import JsonFlag, app
from fabriek.cli.connection import client
from fabriek.cli.output import console, print_json


class Kind(StrEnum):
    user = "user"
    project = "project"
    allocation = "allocation"


KindArg = Annotated[Kind, typer.Argument(help="what to suspend: user, project or allocation")]
RefArg = Annotated[str, typer.Argument(help="its name, or its number")]


@app.command()
def suspend(
    kind: KindArg,
    ref: RefArg,
    reason: Annotated[str, typer.Option("--reason", help="why, as its people will read it")],
    as_json: JsonFlag = False,
) -> None:
    """Suspend a user, project or allocation (admins): what runs finishes, nothing new starts."""
    with client() as c:
        answer = c.identity.set_suspension(kind.value, ref, reason)
    if as_json:
        print_json(answer)
        return
    console.print(
        f"{kind.value} {ref} suspended since {answer['suspended_at']}: {reason}", markup=False
    )


@app.command()
def resume(kind: KindArg, ref: RefArg, as_json: JsonFlag = False) -> None:
    """Lift the suspension of a user, project or allocation (admins)."""
    with client() as c:
        answer = c.identity.set_suspension(kind.value, ref, None)
    if as_json:
        print_json(answer)
        return
    console.print(f"{kind.value} {ref} is no longer suspended", markup=False)
