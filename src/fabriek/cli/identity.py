"""Sign-in and the people of the factory: `fabriek login`, `whoami`, `orgs`, `projects`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from fabriek.cli import config
from fabriek.cli.app import JsonFlag, Limit, app
from fabriek.cli.connection import client
from fabriek.cli.output import console, print_json, print_table
from fabriek.sdk.client import FabriekClient


@app.command()
def login(
    token: Annotated[
        str | None, typer.Option(help="an API token; asked for when not given", show_default=False)
    ] = None,
    url: Annotated[str | None, typer.Option(help="the server, e.g. http://127.0.0.1:8000")] = None,
) -> None:
    """Sign in: check the token with the server and store it (mode 0600) for later commands."""
    creds = config.load()
    server = url or creds.url
    secret = token or typer.prompt("API token", hide_input=True)
    with FabriekClient(server, secret) as c:
        me = c.identity.whoami()
    path = config.save(config.Credentials(url=server, token=secret))
    console.print(
        f"Signed in to {escape(server)} as [bold]{escape(me['username'])}[/] ({escape(me['full_name'])})."
    )
    console.print(f"Token stored in {path}", style="dim", markup=False)


@app.command()
def whoami(as_json: JsonFlag = False) -> None:
    """Who you are signed in as, your roles and projects."""
    with client() as c:
        me = c.identity.whoami()
    if as_json:
        print_json(me)
        return
    console.print(f"[bold]{escape(me['username'])}[/] ({escape(me['full_name'])})")
    console.print(f"staff roles: {', '.join(me['staff_roles']) or '-'}", markup=False)
    projects = ", ".join(f"{p} ({r})" for p, r in me["projects"].items())
    console.print(f"projects: {projects or '-'}", markup=False)
    # Roles held that this token may not use: its sign-in was less sure than they need.
    for withheld in me.get("withheld_roles", []):
        console.print(f"not with this token: {withheld}", style="yellow", markup=False)


@app.command()
def orgs(
    as_json: JsonFlag = False,
    province: Annotated[str | None, typer.Option(help="only this province")] = None,
    hub: Annotated[str | None, typer.Option(help="only this AI hub, e.g. brainport")] = None,
    kind: Annotated[str | None, typer.Option(help="only this kind, e.g. start-up")] = None,
    limit: Limit = 100,
) -> None:
    """Organisations the factory serves."""
    with client() as c:
        found = c.identity.organisations(limit=limit, province=province, hub=hub, kind=kind)
    if as_json:
        print_json(found.items)
        return
    rows = [(o.id, o.name, o.kind.value, o.province.value, o.hub.value) for o in found.items]
    print_table(None, ["#", "Organisation", "Kind", "Province", "AI hub"], rows,
                f"{found.total} organisation(s)")  # fmt: skip


projects_app = typer.Typer(help="Projects you can see, and their members.", no_args_is_help=False)
app.add_typer(projects_app, name="projects")


@projects_app.callback(invoke_without_command=True)
def projects(
    ctx: typer.Context,
    as_json: JsonFlag = False,
    name: Annotated[str | None, typer.Option(help="part of the project name")] = None,
    limit: Limit = 100,
) -> None:
    """List the projects you can see."""
    if ctx.invoked_subcommand is not None:
        return
    with client() as c:
        found = c.identity.projects(limit=limit, name=name)
    if as_json:
        print_json(found.items)
        return
    rows = [(p.name, p.title, p.organisation, p.members) for p in found.items]
    print_table(None, ["Project", "Title", "Organisation", "#Members"], rows,
                f"{found.total} project(s)")  # fmt: skip


@projects_app.command("members")
def project_members(
    project: Annotated[str, typer.Argument(help="project name or id")],
    as_json: JsonFlag = False,
    add: Annotated[str | None, typer.Option(help="add this user")] = None,
    role: Annotated[str, typer.Option(help="role of an added user")] = "member",
    remove: Annotated[str | None, typer.Option(help="remove this user")] = None,
) -> None:
    """A project's members; `--add USER [--role R]` or `--remove USER` to change them."""
    with client() as c:
        if add:
            c.identity.add_member(project, add, role)
        if remove:
            c.identity.remove_member(project, remove)
        members = c.identity.members(project)
    if as_json:
        print_json(members)
        return
    rows = [(m.username, m.full_name, m.role.value, m.since.date()) for m in members]
    print_table(f"Members of {project}", ["User", "Name", "Role", "Since"], rows)
