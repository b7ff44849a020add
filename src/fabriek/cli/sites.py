"""`fabriek sites`: the factory's sites, where they are and what GPUs they hold; and for
their operators, `agent-token` and `agent` (the site agent's token and state)."""

from __future__ import annotations

from typing import Annotated

import typer

from fabriek.cli.app import JsonFlag, Limit, app
from fabriek.cli.connection import client
from fabriek.cli.output import console, print_json, print_table
from fabriek.domain.site_agent_status import ChangeOut

sites_app = typer.Typer(
    name="sites",
    help="The factory's sites and their GPUs; `agent-token` and `agent` below.",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(sites_app)

SiteArg = Annotated[str, typer.Argument(help="the site, by name or number")]


@sites_app.callback()
def sites(
    ctx: typer.Context,
    as_json: JsonFlag = False,
    province: Annotated[str | None, typer.Option(help="only sites in this province")] = None,
    gpu_type: Annotated[str | None, typer.Option("--gpu-type", help="only sites with it")] = None,
    limit: Limit = 100,
) -> None:
    """The factory's sites and their GPUs."""
    if ctx.invoked_subcommand is not None:
        return
    with client() as c:
        found = c.sites.list(limit=limit, province=province, gpu_type=gpu_type)
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


@sites_app.command("agent-token")
def agent_token(site: SiteArg) -> None:
    """A new token for the site's agent (admins, its operators): printed this once; the
    old token stops working."""
    with client() as c:
        token = c.sites.agent_token(site)
    # The token alone on stdout, so that it can be piped into the agent's configuration.
    print(token)
    typer.echo(f"the token of {site}'s agent: it is shown only now", err=True)


def _change_rows(title: str, changes: list[ChangeOut]) -> list[tuple[str, str, str, str]]:
    return [(title, c.kind, c.name, c.detail) for c in changes]


@sites_app.command("agent")
def agent(site: SiteArg, as_json: JsonFlag = False) -> None:
    """The site's agent: when it was last seen, whether the site is in step with its
    desired state, what it found changed by hand and what it could not do."""
    with client() as c:
        status = c.sites.agent(site)
    if as_json:
        print_json(status)
        return
    seen = status.last_seen_at.strftime("%Y-%m-%d %H:%M:%S UTC") if status.last_seen_at else "never"
    step = "in step" if status.in_step else "NOT in step"
    console.print(
        f"site {status.site}: agent last seen {seen}; {step} "
        f"(desired {status.generation[:12]}, applied {(status.applied_generation or '-')[:12]})"
    )
    if not status.has_token:
        console.print(f"no agent token yet: `fabriek sites agent-token {status.site}`")
    rows = _change_rows("error", status.errors) + _change_rows("drift", status.drift)
    print_table(None, ["FOUND", "KIND", "NAME", "DETAIL"], rows,
                f"{len(status.errors)} error(s), {len(status.drift)} drift")  # fmt: skip
