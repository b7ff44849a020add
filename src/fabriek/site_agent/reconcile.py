"""Pure rules of reconciling: whether a thing at the site is as wanted, was changed by hand
(drift), or must be made so; and the tally of what one run did.

Every managed thing (a group, a user, a QOS, an account, an association, the CA key file)
is read into a small JSON-able value. Comparing it with the value wanted now and with the
value the agent last applied tells the three apart: equal to the wanted value, nothing to
do; different from what the agent last applied, someone changed it by hand (drift, put
back); otherwise the wanted state itself changed (applied).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from fabriek.domain.site_state import Change, ChangeKind
from fabriek.site_agent.tools import ToolFailed

Value = dict[str, Any]
Verdict = Literal["same", "applied", "drift"]


def verdict(current: Value | None, wanted: Value, last: Value | None) -> Verdict:
    """`current`: read at the site (None: missing); `last`: what the agent applied last
    time (None: never)."""
    if current == wanted:
        return "same"
    if last is not None and current != last:
        return "drift"
    return "applied"


def differences(current: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> str:
    """In words, what differs: `field found -> wanted` for each field, or `missing`."""
    if current is None:
        return "missing"
    parts = [
        f"{key} {_show(current.get(key))} -> {_show(value)}"
        for key, value in wanted.items()
        if current.get(key) != value
    ]
    return "; ".join(parts) or "as wanted"


def _show(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "(none)"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def key(kind: ChangeKind, name: str) -> str:
    """How a thing is named in the agent's memory of what it applied."""
    return f"{kind}:{name}"


@dataclass
class Tally:
    """What one run did: the report's three lists, and the values now applied (the memory
    the next run compares with)."""

    last: Mapping[str, Value]
    applied: list[Change] = field(default_factory=list)
    drift: list[Change] = field(default_factory=list)
    errors: list[Change] = field(default_factory=list)
    items: dict[str, Value] = field(default_factory=dict)

    def error(self, kind: ChangeKind, name: str, detail: str) -> None:
        """Something that could not be done; what the agent applied before is kept."""
        self.errors.append(Change(kind, name, detail))
        previous = self.last.get(key(kind, name))
        if previous is not None:
            self.items[key(kind, name)] = previous

    def settle(
        self,
        kind: ChangeKind,
        name: str,
        current: Value | None,
        wanted: Value,
        make: Callable[[], str | None],
    ) -> None:
        """Make a thing as wanted unless it is; `make` changes the site and may say how
        (else the differences say it). A failure of `make` is an error, not a change."""
        found = verdict(current, wanted, self.last.get(key(kind, name)))
        if found == "same":
            self.items[key(kind, name)] = wanted
            return
        try:
            said = make()
        except ToolFailed as exc:
            self.error(kind, name, str(exc))
            return
        except OSError as exc:  # a file the agent writes (SSH trust): a folder not there, ...
            self.error(kind, name, f"{exc.strerror}: {exc.filename}")
            return
        self.items[key(kind, name)] = wanted
        how = said or ("created" if current is None else differences(current, wanted))
        if found == "drift" and current is None:
            self.drift.append(Change(kind, name, "removed by hand; made again"))
        elif found == "drift":
            self.drift.append(Change(kind, name, f"changed by hand ({how}); put back"))
        else:
            self.applied.append(Change(kind, name, how))
