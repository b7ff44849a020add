"""`fabriek sites`: the factory's sites, where they are and what GPUs they hold; and for
their operators, `agent-token` and `agent` (the site agent's token and state) and
`harvest` (the site's Slurm accounting in the ledger)."""

from __future__ import annotations

from typing import Annotated

import typer

from fabriek.cli.app import JsonFlag, Limit, app
from fabriek.cli.connection import client
from fabriek.cli.output import console, print_json, print_table
from fabriek.domain.site_agent_status import ChangeOut

sites_app = typer.Typer(
    name="sites",
    help="The factory's sites and their GPUs; `agent-token`, `agent` and `harvest` below.",
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
        f"(desired {status.generation[:12]}, applied {(status.applied_generation or '-')[:12]})",
        markup=False,
    )
    if not status.has_token:
        console.print(
            f"no agent token yet: `fabriek sites agent-token {status.site}`", markup=False
        )
    rows = _change_rows("error", status.errors) + _change_rows("drift", status.drift)
    print_table(None, ["FOUND", "KIND", "NAME", "DETAIL"], rows,
                f"{len(status.errors)} error(s), {len(status.drift)} drift")  # fmt: skip


@sites_app.command("harvest")
def harvest(
    site: SiteArg,
    now: Annotated[
        bool, typer.Option("--now", help="read the site's accounting now (a slurmrestd site)")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Where the harvest of the site's Slurm accounting stands (admins, its operators):
    up to when every run is in the ledger, and runs of users or accounts Fabriek does not
    know. With --now, read the accounting first."""
    with client() as c:
        done = c.sites.harvest_now(site) if now else None
        state = c.sites.harvest(site)
    if as_json:
        print_json({**state, "harvest": done} if done is not None else state)
        return
    if done is not None:
        console.print(
            f"read {done['records']} run(s): {done['added']} added, {done['corrected']} "
            f"corrected, {done['fabriek']} of Fabriek's own, {done['not_ended']} still running, "
            f"{done['unmatched']} unknown ({done['gpu_hours']:.2f} GPU-h charged)",
            markup=False,
        )
    through = (state["through"] or "never")[:19].replace("T", " ")
    console.print(
        f"site {state['site']}: harvested through {through} UTC; "
        f"{state['records_seen']} run(s) read, {state['jobs_added']} job(s) added",
        markup=False,
    )
    rows = [(u["user"], u["account"], u["count"]) for u in state["unmatched"]]
    print_table(None, ["USER", "ACCOUNT", "RUNS"], rows,
                f"{sum(u['count'] for u in state['unmatched'])} run(s) of unknown users or "
                "accounts, not charged")  # fmt: skip
