"""`fabriek site-agent`: the commands that run at a site, as a Typer group registered on the
`fabriek` command by the catalogue (`register`), so that a client command never imports
them. Each capability adds its sub-commands from its own module (`ssh_commands`, ...)."""

from __future__ import annotations

import typer

from fabriek.site_agent import run_command, ssh_commands

site_agent_app = typer.Typer(
    name="site-agent",
    help="Commands that run at a site: the login nodes' SSH look-ups, the agent itself.",
    no_args_is_help=True,
)
ssh_commands.register(site_agent_app)
run_command.register(site_agent_app)


def register(app: typer.Typer) -> None:
    """Add the `site-agent` group, with every capability's sub-commands, to `app`."""
    app.add_typer(site_agent_app)
