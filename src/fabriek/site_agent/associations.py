"""Members of projects as Slurm user associations, each person's default account, and the
removal of members who left a project: immediately when they have no jobs, else once their
jobs are done (meanwhile their association accepts no new job, MaxSubmitJobs=0)."""

from __future__ import annotations

from collections.abc import Collection

from fabriek.domain.site_state import Change, DesiredState
from fabriek.site_agent.reconcile import Tally, Value, key
from fabriek.site_agent.sacctmgr import AssocRow, Sacctmgr, valid_name

# What sacctmgr says when it refuses to remove an association that has jobs.
_ACTIVE_JOBS = "job(s) active"


def _name(account: str, user: str) -> str:
    return f"{user} in {account}"


def apply_associations(
    slurm: Sacctmgr, state: DesiredState, managed_accounts: Collection[str], tally: Tally
) -> None:
    """Every wanted association, each member's default account, and no other association
    of a user on the accounts Fabriek manages (`managed_accounts`)."""
    rows = {(r.account, r.user): r for r in slurm.assocs() if r.user}
    wanted: dict[str, list[str]] = {}
    for assoc in state.associations:
        if not (valid_name(assoc.user) and valid_name(assoc.account)):
            tally.error("association", _name(assoc.account, assoc.user), "not a Slurm name")
            continue
        wanted.setdefault(assoc.user, []).append(assoc.account)
        row = rows.get((assoc.account, assoc.user))
        current: Value | None = None if row is None else {"blocked": row.max_submit_jobs == "0"}

        def make(
            account: str = assoc.account, user: str = assoc.user, row: AssocRow | None = row
        ) -> None:
            where = [f"account={account}", f"cluster={slurm.cluster}"]
            if row is None:
                slurm.change("add", "user", user, *where)
            else:
                slurm.change(
                    "modify", "user", "where", f"name={user}", *where, "set", "maxsubmitjobs=-1"
                )

        tally.settle(
            "association", _name(assoc.account, assoc.user), current, {"blocked": False}, make
        )
    _apply_defaults(slurm, wanted, tally)
    for (account, user), row in sorted(rows.items()):
        if account in managed_accounts and user != "root" and account not in wanted.get(user, ()):
            _remove(slurm, row, tally)


def _apply_defaults(slurm: Sacctmgr, wanted: dict[str, list[str]], tally: Tally) -> None:
    defaults = slurm.default_accounts()
    for user, accounts in sorted(wanted.items()):
        current_default = defaults.get(user)
        # A default the person still may use is kept; else the first of their projects.
        target = current_default if current_default in accounts else min(accounts)
        current: Value | None = (
            None if current_default is None else {"default_account": current_default}
        )

        def make(user: str = user, target: str = target) -> None:
            slurm.change("modify", "user", "where", f"name={user}", f"cluster={slurm.cluster}",
                         "set", f"defaultaccount={target}")  # fmt: skip

        tally.settle(
            "association", f"{user} default account", current, {"default_account": target}, make
        )


def _remove(slurm: Sacctmgr, row: AssocRow, tally: Tally) -> None:
    """Remove an association no longer wanted; one the agent never made is drift."""
    name = _name(row.account, row.user)
    ours = tally.last.get(key("association", name)) is not None
    where = [f"name={row.user}", f"account={row.account}", f"cluster={slurm.cluster}"]
    done, said = slurm.try_change("delete", "user", *where)
    if done:
        change = Change("association", name, "no longer a member: association removed")
        if ours:
            tally.applied.append(change)
        else:
            tally.drift.append(Change("association", name, "added by hand: removed"))
        return
    if _ACTIVE_JOBS not in said.lower():
        tally.error("association", name, f"cannot remove: {' '.join(said.split())[:300]}")
        return
    # Still Fabriek's to remove: remembered, so the next run does not count it as drift.
    tally.items[key("association", name)] = {"blocked": True}
    if row.max_submit_jobs != "0":
        slurm.change("modify", "user", "where", *where, "set", "maxsubmitjobs=0")
        detail = (
            "no longer a member; has jobs: no new jobs (MaxSubmitJobs=0), removed once they end"
        )
        (tally.applied if ours else tally.drift).append(Change("association", name, detail))
