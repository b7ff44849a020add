"""`fabriek site-agent run`: the agent's daemon (or one pass with --once), as a systemd
service runs it at a site:

    fabriek site-agent run --url https://fabriek.example --site site-a \
        --token-file /etc/fabriek/agent.token --ssh-ca-file /etc/ssh/fabriek_user_ca.pub
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from fabriek.cli.output import print_json
from fabriek.domain.site_state import AgentReport
from fabriek.sdk import ApiError, ApiUnreachable
from fabriek.sdk.site_agent import SiteAgentClient
from fabriek.site_agent.apply import AgentConfig
from fabriek.site_agent.loop import run_once
from fabriek.site_agent.ssh_commands import Site, TokenFile, Url
from fabriek.site_agent.tools import ToolFailed
from fabriek.site_agent.usage import push_usage

# Exit status of --once when the control plane did not answer; 2 for a wrong command line.
UNANSWERED = 1
BAD_INPUT = 2

StateDir = Annotated[
    Path, typer.Option("--state-dir", help="where the agent remembers what it applied")
]
Once = Annotated[bool, typer.Option("--once", help="one pass, then exit")]
Interval = Annotated[
    int, typer.Option("--interval", min=1, help="seconds between passes (as a daemon)")
]
CaFile = Annotated[
    Path | None,
    typer.Option("--ssh-ca-file", help="write the factory's SSH CA key here (TrustedUserCAKeys)"),
]
KeysDir = Annotated[
    Path | None,
    typer.Option(
        "--authorized-keys-dir", help="write each person's keys to DIR/<user> (AuthorizedKeysFile)"
    ),
]
HomeBase = Annotated[
    Path | None, typer.Option("--home-base", help="make new homes here (useradd -b)")
]
Posix = Annotated[
    bool, typer.Option("--posix/--no-posix", help="manage Unix groups and accounts here")
]
Slurm = Annotated[
    bool, typer.Option("--slurm/--no-slurm", help="manage Slurm's accounting (sacctmgr) here")
]
Json = Annotated[bool, typer.Option("--json", help="print each report as JSON")]
Usage = Annotated[
    bool,
    typer.Option("--usage/--no-usage", help="push Slurm's accounting (sacct) with --slurm"),
]


def run(
    url: Url,
    site: Site,
    token_file: TokenFile,
    state_dir: StateDir = Path("/var/lib/fabriek-agent"),
    once: Once = False,
    interval: Interval = 30,
    ssh_ca_file: CaFile = None,
    authorized_keys_dir: KeysDir = None,
    home_base: HomeBase = None,
    posix: Posix = True,
    slurm: Slurm = True,
    usage: Usage = True,
    json: Json = False,
) -> None:
    """Keep this site as the control plane wants it: pull its desired state, apply it
    (POSIX accounts, SSH trust, Slurm's QOS, accounts, limits and associations), report
    what changed and what was found changed by hand; every --interval seconds."""
    token = _token(token_file)
    config = AgentConfig(
        state_dir=state_dir,
        posix=posix,
        slurm=slurm,
        ssh_ca_file=ssh_ca_file,
        authorized_keys_dir=authorized_keys_dir,
        home_base=home_base,
    )
    while True:
        try:
            with SiteAgentClient(url, site, token) as client:
                _show(run_once(client, config), json)
                if slurm and usage:
                    _push_usage(client, config)
        except (ApiError, ApiUnreachable) as exc:
            # One line; the control plane keeps the desired state, the next pass applies it.
            again = "" if once else f"; trying again in {interval} s"
            print(f"fabriek site-agent: {exc}{again}", file=sys.stderr, flush=True)
            if once:
                raise typer.Exit(UNANSWERED) from None
        if once:
            return
        time.sleep(interval)


def _push_usage(client: SiteAgentClient, config: AgentConfig) -> None:
    """Every job run since the last push, to the control plane's ledger; sacct failing
    (slurmdbd down) is one line: the same runs are pushed next time."""
    try:
        pushed = push_usage(client, config.state_dir, dict(config.slurm_env))
    except ToolFailed as exc:
        print(f"fabriek site-agent: usage not pushed: {exc}", file=sys.stderr, flush=True)
        return
    counts = ", ".join(f"{k} {v}" for k, v in sorted(pushed.items()))
    print(f"usage pushed: {counts or 'nothing new'}", file=sys.stderr, flush=True)


def _token(path: Path) -> str:
    try:
        if path.stat().st_mode & 0o077:
            _refuse(f"{path} may be read by others: chmod 600 {path}")
        token = path.read_text().strip()
    except OSError as exc:
        _refuse(f"cannot read the site token {path}: {exc.strerror}")
    if not token:
        _refuse(f"{path} holds no token (fabriek sites agent-token SITE makes one)")
    return token


def _refuse(message: str) -> NoReturn:
    print(f"fabriek site-agent: {message}", file=sys.stderr)
    raise typer.Exit(BAD_INPUT)


def _show(report: AgentReport, as_json: bool) -> None:
    if as_json:
        print_json(report.to_json())
        return
    counts = (
        f"{len(report.applied)} applied, {len(report.drift)} drift, {len(report.errors)} errors"
    )
    print(f"generation {report.generation[:12]}: {counts}", flush=True)
    for label, changes in (
        ("applied", report.applied),
        ("drift", report.drift),
        ("error", report.errors),
    ):
        for change in changes:
            print(f"  {label:<8} {change.kind:<12} {change.name}: {change.detail}", flush=True)


def register(group: typer.Typer) -> None:
    """Add `run` to the `site-agent` group."""
    group.command("run")(run)
