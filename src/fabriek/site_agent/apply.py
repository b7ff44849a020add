"""One pass of the agent: make the site match a desired state and say what that took.

    report = apply_state(state, AgentConfig(state_dir=Path("/var/lib/fabriek-agent")))

Usable as a library (the tests call it directly) as well as from `fabriek site-agent run`.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fabriek.domain.site_state import AgentReport, DesiredState
from fabriek.site_agent import memory as agent_memory
from fabriek.site_agent.associations import apply_associations
from fabriek.site_agent.posix import apply_groups, apply_users, retired_user
from fabriek.site_agent.reconcile import Tally
from fabriek.site_agent.sacctmgr import Sacctmgr
from fabriek.site_agent.slurm import apply_accounts, apply_qos, retire_accounts
from fabriek.site_agent.ssh import apply_authorized_keys, apply_ca_key
from fabriek.site_agent.tools import ToolFailed, Tools

_SLURM_KINDS = ("qos:", "account:", "association:")


@dataclass(frozen=True)
class AgentConfig:
    """Where the agent keeps its memory and what it manages on this machine.

    `posix`: POSIX groups and accounts (on every login and compute node); `slurm`: Slurm's
    accounting (on one machine that may run sacctmgr); `ssh_ca_file`: the file sshd's
    TrustedUserCAKeys names; `authorized_keys_dir`: the folder of AuthorizedKeysFile
    `<dir>/%u`; `home_base`: where new homes are made (useradd's default when None);
    `slurm_env`: environment for Slurm's commands (SLURM_CONF)."""

    state_dir: Path
    posix: bool = True
    slurm: bool = True
    ssh_ca_file: Path | None = None
    authorized_keys_dir: Path | None = None
    home_base: Path | None = None
    slurm_env: Mapping[str, str] = field(default_factory=dict)


def apply_state(state: DesiredState, config: AgentConfig) -> AgentReport:
    """Make this machine and the site's Slurm match `state`, idempotently; remember what
    was applied; return the report for the control plane."""
    tools = Tools(config.slurm_env)
    memory = agent_memory.load(config.state_dir)
    tally = Tally(last=memory.items)
    if config.posix:
        wanted = {u.username for u in state.users}
        retired = [
            retired_user(name, value)
            for k, value in sorted(memory.items.items())
            if k.startswith("user:") and (name := k.removeprefix("user:")) not in wanted
        ]
        users = [*state.users, *retired]
        apply_groups(tools, state.groups, tally)
        apply_users(tools, users, [g.name for g in state.groups], tally, config.home_base)
        if config.authorized_keys_dir is not None:
            apply_authorized_keys(users, config.authorized_keys_dir, tally)
    if config.ssh_ca_file is not None:
        apply_ca_key(state.ssh_ca_public_key, config.ssh_ca_file, tally)
    limits = memory.limits
    if config.slurm:
        limits = _apply_slurm(tools, state, memory, tally)
    else:
        _carry(memory, tally, _SLURM_KINDS)
    if not config.posix:
        _carry(memory, tally, ("group:", "user:"))
    agent_memory.save(
        config.state_dir,
        agent_memory.Memory(items=tally.items, limits=limits, generation=state.generation),
    )
    return AgentReport(
        generation=state.generation,
        applied=tuple(tally.applied),
        drift=tuple(tally.drift),
        errors=tuple(tally.errors),
        details={
            "host": socket.gethostname(),
            "cluster": state.cluster,
            "gpu_minutes_limits": {name: v["limit"] for name, v in sorted(limits.items())},
        },
    )


def _apply_slurm(
    tools: Tools, state: DesiredState, memory: agent_memory.Memory, tally: Tally
) -> dict[str, dict[str, int]]:
    slurm = Sacctmgr(tools, state.cluster)
    wanted = {a.name for a in state.accounts}
    retired = {
        k.removeprefix("account:")
        for k in memory.items
        if k.startswith("account:") and k.removeprefix("account:") not in wanted
    }
    try:
        apply_qos(slurm, state, tally)
        limits = apply_accounts(slurm, state, tally, memory.limits)
        apply_associations(slurm, state, wanted | retired, tally)
        retire_accounts(slurm, retired, tally)
    except (ToolFailed, ValueError) as exc:
        # Slurm's database or controller is down: nothing of Slurm is known to be applied.
        tally.error("account", state.cluster, f"Slurm's accounting not reachable: {exc}")
        _carry(memory, tally, _SLURM_KINDS)
        return memory.limits
    return limits


def _carry(memory: agent_memory.Memory, tally: Tally, prefixes: tuple[str, ...]) -> None:
    """Keep the memory of what this run did not look at."""
    for k, value in memory.items.items():
        if k.startswith(prefixes):
            tally.items.setdefault(k, value)
