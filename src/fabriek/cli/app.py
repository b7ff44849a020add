"""The client commands: they talk to the server through the SDK only."""

from __future__ import annotations

from typing import Annotated

import typer

from fabriek.cli import config
from fabriek.cli.output import console, print_json, print_table
from fabriek.sdk import FabriekClient

app = typer.Typer(
    name="fabriek",
    help="Fabriek: the control plane of a sovereign AI factory.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
Limit = Annotated[int, typer.Option("--limit", min=1, max=1000, help="rows to show")]


def client(require_token: bool = True) -> FabriekClient:
    creds = config.load()
    if require_token and not creds.token:
        raise config.NotSignedIn(
            "not signed in: run `fabriek login` or set FABRIEK_TOKEN (and FABRIEK_URL)"
        )
    return FabriekClient(creds.url, creds.token)


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
        me = c.whoami()
    path = config.save(config.Credentials(url=server, token=secret))
    console.print(f"Signed in to {server} as [bold]{me['username']}[/] ({me['full_name']}).")
    console.print(f"Token stored in {path}", style="dim")


@app.command()
def whoami(as_json: JsonFlag = False) -> None:
    """Who you are signed in as, your roles and projects."""
    with client() as c:
        me = c.whoami()
    if as_json:
        print_json(me)
        return
    console.print(f"[bold]{me['username']}[/] ({me['full_name']})")
    console.print(f"staff roles: {', '.join(me['staff_roles']) or '-'}")
    projects = ", ".join(f"{p} ({r})" for p, r in me["projects"].items())
    console.print(f"projects: {projects or '-'}")


@app.command()
def sites(
    as_json: JsonFlag = False,
    province: Annotated[str | None, typer.Option(help="only sites in this province")] = None,
    gpu_type: Annotated[str | None, typer.Option("--gpu-type", help="only sites with it")] = None,
    limit: Limit = 100,
) -> None:
    """The factory's sites and their GPUs."""
    with client() as c:
        found = c.sites(limit=limit, province=province, gpu_type=gpu_type)
    if as_json:
        print_json(found.items)
        return
    rows = [
        (s.name, s.city, s.province.value, s.engine, s.nodes,
         ", ".join(f"{n}×{t}" for t, n in s.gpus.items()) or "-",
         f"{s.pue:.2f}" if s.pue else "-")
        for s in found.items
    ]  # fmt: skip
    print_table(None, ["Site", "City", "Province", "Engine", "Nodes", "GPUs", "PUE"], rows,
                f"{found.total} site(s)")  # fmt: skip


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
        found = c.organisations(limit=limit, province=province, hub=hub, kind=kind)
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
        found = c.projects(limit=limit, name=name)
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
            c.add_member(project, add, role)
        if remove:
            c.remove_member(project, remove)
        members = c.members(project)
    if as_json:
        print_json(members)
        return
    rows = [(m.username, m.full_name, m.role.value, m.since.date()) for m in members]
    print_table(f"Members of {project}", ["User", "Name", "Role", "Since"], rows)
