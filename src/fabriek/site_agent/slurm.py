"""Slurm's accounting at the site, kept as the control plane wants it: each access track a
QOS, each project an account with a GrpTRESMins=gres/gpu= limit, each member a user
association. All through `sacctmgr`, which the agent may run as root or as Slurm's
operator.

An account's limit is what Slurm has counted for it so far plus the GPU-minutes the control
plane says are left, computed when that figure changes (not on every run: usage alone must
never raise a limit). A member removed from a project loses their association; while they
still have jobs Slurm refuses that, so their association takes no new jobs
(MaxSubmitJobs=0) and is removed on a later run.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from fabriek.domain.site_state import Change, DesiredState, SlurmAccount
from fabriek.site_agent.reconcile import Tally, Value, differences, key
from fabriek.site_agent.sacctmgr import AssocRow, Sacctmgr, clean_description, valid_name
from fabriek.site_agent.tools import ToolFailed

Limits = dict[str, dict[str, int]]


def apply_qos(slurm: Sacctmgr, state: DesiredState, tally: Tally) -> None:
    """Every QOS with its priority, longest wall time and preemption: jobs of a
    non-preemptible QOS may preempt those of the preemptible ones (with requeue)."""
    preemptible = sorted(q.name for q in state.qos if q.preemptible)
    found = slurm.qos()
    # The preemptible ones first: a QOS can only name existing ones as those it preempts.
    for qos in sorted(state.qos, key=lambda q: (not q.preemptible, q.name)):
        if not valid_name(qos.name):
            tally.error("qos", qos.name, "not a name Slurm accepts for a QOS")
            continue
        wanted: Value = {
            "priority": qos.priority,
            "max_wall_minutes": qos.max_wall_minutes,
            "preempt": [] if qos.preemptible else preemptible,
            "preempt_mode": "requeue" if qos.preemptible else "cluster",
        }
        current = found.get(qos.name)

        def make(
            name: str = qos.name, wanted: Value = wanted, current: Value | None = current
        ) -> None:
            if current is None:
                slurm.change("add", "qos", name)
            wall = wanted["max_wall_minutes"]
            settings = [
                f"priority={wanted['priority']}",
                f"maxwall={-1 if wall is None else wall}",
                f"preemptmode={wanted['preempt_mode']}",
            ]
            had = list(current["preempt"]) if current is not None else []
            if wanted["preempt"]:
                settings.append(f"preempt={','.join(wanted['preempt'])}")
            elif had:
                # Slurm 22.05: an empty `preempt=` leaves the QOS in a state its preemption
                # loop check rejects ever after; take the names out one by one instead.
                settings.append(f"preempt={','.join('-' + n for n in had)}")
            slurm.change("modify", "qos", "where", f"name={name}", "set", *settings)

        tally.settle("qos", qos.name, current, wanted, make)


def apply_accounts(
    slurm: Sacctmgr, state: DesiredState, tally: Tally, limits: Mapping[str, Mapping[str, int]]
) -> Limits:
    """Every project account with its description, QOS and GPU-minute limit; returns the
    limits as now set, for the agent's memory."""
    rows = {r.account: r for r in slurm.assocs() if not r.user}
    descriptions = slurm.descriptions()
    now: Limits = {}
    for account in state.accounts:
        if not valid_name(account.name):
            tally.error("account", account.name, "not a name Slurm accepts for an account")
            continue
        try:
            limit, used = _limit(slurm, account, limits.get(account.name), account.name in rows)
        except (ToolFailed, ValueError) as exc:
            tally.error("account", account.name, f"cannot read its usage: {exc}")
            continue
        now[account.name] = {"gpu_minutes": account.gpu_minutes, "limit": limit}
        _apply_account(slurm, account, rows.get(account.name), descriptions, limit, used, tally)
    return now


def _limit(
    slurm: Sacctmgr, account: SlurmAccount, basis: Mapping[str, int] | None, exists: bool
) -> tuple[int, int | None]:
    """The account's GrpTRESMins on gres/gpu, and the count it was made from (None when
    the limit is the one set before): what Fabriek has charged at this site when the state
    says (exact, whatever Slurm counted that is not harvested yet), else Slurm's own count."""
    if account.counted_gpu_minutes is not None:
        counted = account.counted_gpu_minutes
        return counted + account.gpu_minutes, counted
    if basis is not None and basis.get("gpu_minutes") == account.gpu_minutes:
        return int(basis["limit"]), None
    used = slurm.used_gpu_minutes(account.name) if exists else 0
    return used + account.gpu_minutes, used


def _apply_account(
    slurm: Sacctmgr,
    account: SlurmAccount,
    row: AssocRow | None,
    descriptions: Mapping[str, str],
    limit: int,
    used: int | None,
    tally: Tally,
) -> None:
    wanted: Value = {
        "description": clean_description(account.description or account.name),
        "gpu_minutes_limit": limit,
    }
    if account.qos:
        wanted |= {"qos": sorted(set(account.qos)), "default_qos": account.qos[0]}
    current: Value | None = None
    if row is not None and account.name in descriptions:
        current = {
            "description": descriptions[account.name],
            "gpu_minutes_limit": row.limits.get("gres/gpu"),
        }
        if account.qos:
            current |= {"qos": sorted(row.qos), "default_qos": row.default_qos}

    def make() -> str:
        name = account.name
        if current is None:
            slurm.change(
                "add", "account", name, f"cluster={slurm.cluster}", "parent=root",
                f"description={wanted['description']}",
            )  # fmt: skip
        settings = [f"description={wanted['description']}", f"grptresmins=gres/gpu={limit}"]
        if account.qos:
            settings += [f"qos={','.join(wanted['qos'])}", f"defaultqos={wanted['default_qos']}"]
        where = ["where", f"name={name}", f"cluster={slurm.cluster}"]
        slurm.change("modify", "account", *where, "set", *settings)
        said = "created" if current is None else differences(current, wanted)
        if used is not None:
            said += (
                f" (GrpTRESMins gres/gpu={limit}: {used} GPU-minutes counted so far, "
                f"{account.gpu_minutes} left)"
            )
        return said

    tally.settle("account", account.name, current, wanted, make)


def retire_accounts(slurm: Sacctmgr, accounts: Collection[str], tally: Tally) -> None:
    """Remove the accounts of projects no longer at this site (their members' associations
    are gone by now). One with jobs left takes no new ones (GrpSubmitJobs=0) and is
    removed on a later run."""
    existing = {r.account: r for r in slurm.assocs() if not r.user}
    for name in sorted(accounts):
        row = existing.get(name)
        if row is None:
            continue
        done, said = slurm.try_change(
            "delete", "account", f"name={name}", f"cluster={slurm.cluster}"
        )
        if done:
            tally.applied.append(Change("account", name, "no longer at this site: removed"))
            continue
        tally.items[key("account", name)] = {"retiring": True}
        if row.grp_submit_jobs != "0":
            where = ["where", f"name={name}", f"cluster={slurm.cluster}"]
            slurm.change("modify", "account", *where, "set", "grpsubmitjobs=0")
            tally.applied.append(
                Change(
                    "account",
                    name,
                    "no longer at this site; has jobs: no new jobs (GrpSubmitJobs=0), "
                    f"removed once they end ({' '.join(said.split())[:200]})",
                )
            )
