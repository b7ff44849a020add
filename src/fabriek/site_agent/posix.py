"""POSIX groups and accounts at the site, made with the site's own tools (getent, groupadd,
useradd, usermod, gpasswd), read before written.

A name or number that already belongs to another account or group at the site is never
touched: it is reported as an error naming both, for a person to sort out. Nothing is ever
deleted: a person who is no longer wanted is locked (password and account expiry, so that
SSH keys and certificates stop working too), their home and files kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from fabriek.domain.site_state import PosixGroup, PosixUser
from fabriek.site_agent.reconcile import Tally, Value
from fabriek.site_agent.tools import Tools

# usermod -e 1: the account expired on 2 January 1970; usermod's manual names it as the way
# to lock an account fully (keys included), not only its password.
_EXPIRED = "1"


def getent(tools: Tools, database: str, key: str) -> list[str] | None:
    """The entry of `key` (a name or a number) in a name service database, split on ':';
    None when there is none."""
    done = tools.run(["getent", database, key], check=False)
    line = done.out.strip().splitlines()
    return line[0].split(":") if done.code == 0 and line else None


def apply_groups(tools: Tools, groups: Iterable[PosixGroup], tally: Tally) -> None:
    """Make every group exist with its GID."""
    for group in groups:
        by_name = getent(tools, "group", group.name)
        if by_name is not None and int(by_name[2]) != group.gid:
            tally.error(
                "group",
                group.name,
                f"group {group.name!r} is GID {by_name[2]} at this site, Fabriek gives it "
                f"GID {group.gid}: not touched",
            )
            continue
        by_gid = getent(tools, "group", str(group.gid)) if by_name is None else None
        if by_gid is not None:
            tally.error(
                "group",
                group.name,
                f"GID {group.gid} already belongs to group {by_gid[0]!r} at this site, "
                f"Fabriek gives it to {group.name!r}: not touched",
            )
            continue
        current = None if by_name is None else {"gid": group.gid}

        def make(group: PosixGroup = group) -> None:
            tools.run(["groupadd", "-g", str(group.gid), group.name])

        tally.settle("group", group.name, current, {"gid": group.gid}, make)


def user_value(user: PosixUser) -> Value:
    """What the agent keeps true of an account."""
    return {
        "uid": user.uid,
        "gid": user.gid,
        "shell": user.shell,
        "groups": sorted(set(user.groups)),
        "locked": user.locked,
    }


def retired_user(name: str, last: Value) -> PosixUser:
    """A person the agent made who is no longer wanted at the site: the same account,
    locked."""
    return PosixUser(
        username=name,
        uid=int(last["uid"]),
        gid=int(last["gid"]),
        groups=tuple(last.get("groups", ())),
        shell=str(last.get("shell", "/bin/bash")),
        locked=True,
    )


def apply_users(
    tools: Tools,
    users: Iterable[PosixUser],
    managed_groups: Iterable[str],
    tally: Tally,
    home_base: Path | None = None,
) -> None:
    """Make every account exist as wanted. `managed_groups`: the groups Fabriek gives out;
    a person is taken out of those they should not be in, never out of the site's own."""
    managed = set(managed_groups)
    members: dict[str, set[str]] = {}
    for name in managed | {g for u in users for g in u.groups}:
        entry = getent(tools, "group", name)
        members[name] = set(entry[3].split(",")) - {""} if entry and len(entry) > 3 else set()
    for user in users:
        _apply_user(tools, user, managed, members, tally, home_base)


def _apply_user(
    tools: Tools,
    user: PosixUser,
    managed: set[str],
    members: dict[str, set[str]],
    tally: Tally,
    home_base: Path | None,
) -> None:
    name = user.username
    by_name = getent(tools, "passwd", name)
    if by_name is not None and int(by_name[2]) != user.uid:
        tally.error(
            "user",
            name,
            f"username {name!r} already belongs to UID {by_name[2]} at this site, Fabriek "
            f"gives it UID {user.uid}: not touched",
        )
        return
    by_uid = getent(tools, "passwd", str(user.uid)) if by_name is None else None
    if by_uid is not None:
        tally.error(
            "user",
            name,
            f"UID {user.uid} already belongs to {by_uid[0]!r} at this site, Fabriek gives "
            f"it to {name!r}: not touched",
        )
        return
    wanted = user_value(user)
    current: Value | None = None
    shadow: list[str] | None = None
    if by_name is not None:
        shadow = getent(tools, "shadow", name)
        in_groups = {
            g for g, who in members.items() if name in who and g in managed | set(user.groups)
        }
        current = {
            "uid": int(by_name[2]),
            "gid": int(by_name[3]),
            "shell": by_name[6] if len(by_name) > 6 else "",
            "groups": sorted(in_groups),
            "locked": bool(shadow and len(shadow) > 7 and shadow[7] in ("0", _EXPIRED)),
        }

    def make() -> None:
        if current is None:
            home = ["-m", "-b", str(home_base)] if home_base is not None else ["-m"]
            extra = ["-G", ",".join(wanted["groups"])] if wanted["groups"] else []
            # Password '*': no password login, yet not '!' (useradd's default), which sshd
            # without PAM takes for a locked account, refusing keys and certificates too.
            argv = ["useradd", "-u", str(user.uid), "-g", str(user.gid), "-s", user.shell]
            argv += ["-p", "*"]
            tools.run([*argv, *home, *extra, name])
            if user.locked:
                tools.run(["usermod", "-L", "-e", _EXPIRED, name])
            return
        _change_user(tools, user, current, wanted, shadow, managed)

    tally.settle("user", name, current, wanted, make)


def _change_user(
    tools: Tools,
    user: PosixUser,
    current: Value,
    wanted: Value,
    shadow: list[str] | None,
    managed: set[str],
) -> None:
    name = user.username
    if (current["gid"], current["shell"]) != (wanted["gid"], wanted["shell"]):
        tools.run(["usermod", "-g", str(user.gid), "-s", user.shell, name])
    missing = sorted(set(wanted["groups"]) - set(current["groups"]))
    if missing:
        tools.run(["usermod", "-a", "-G", ",".join(missing), name])
    for group in sorted((set(current["groups"]) - set(wanted["groups"])) & managed):
        tools.run(["gpasswd", "-d", name, group])
    if current["locked"] != wanted["locked"]:
        if user.locked:
            tools.run(["usermod", "-L", "-e", _EXPIRED, name])
        else:
            tools.run(["usermod", "-e", "", name])
            password = shadow[1] if shadow and len(shadow) > 1 else ""
            # A bare "!" is "no password yet": unlocking it would leave none at all, which
            # usermod refuses; only a password that -L prefixed is unlocked.
            if password.startswith("!") and len(password) > 1:
                tools.run(["usermod", "-U", name])
