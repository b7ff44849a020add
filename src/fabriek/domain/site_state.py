"""What a site should look like, as its agent applies it, and what the agent reports back.

The control plane computes a site's `DesiredState` from its store (people, projects,
memberships, allocations, access tracks, SSH trust) and serves it to the site's agent
(`fabriek site-agent`), which makes the site's machines and its Slurm database match it
and answers with an `AgentReport`: what it changed, what it found changed by hand (drift,
which it also puts back), and what it could not do. The state carries a `generation`, a
hash of its content, so that a report names exactly the state it applied and an agent
that is down and comes back applies the newest state, never a stale one: nothing is lost,
only delayed.

Both sides exchange these values as JSON (`to_json`/`from_json`); this module is the
contract, pure and without I/O.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

ChangeKind = Literal[
    "group",  # a POSIX group (a person's own, or a project's)
    "user",  # a POSIX account
    "ssh",  # SSH trust: the CA key, authorised keys
    "qos",  # a Slurm QOS
    "account",  # a Slurm account (a project) and its limits
    "association",  # a Slurm user association (a member of a project)
]


@dataclass(frozen=True)
class PosixGroup:
    """A Unix group at the site: a person's own primary group, or a project's group."""

    name: str
    gid: int


@dataclass(frozen=True)
class PosixUser:
    """A person's Unix account at the site. `groups`: the project groups they are in.
    `ssh_keys`: the public keys they registered (OpenSSH one-line form). `locked`: the
    person may no longer log in (suspended, left their organisation): keep the account and
    its files, refuse logins."""

    username: str
    uid: int
    gid: int
    groups: tuple[str, ...] = ()
    ssh_keys: tuple[str, ...] = ()
    locked: bool = False
    shell: str = "/bin/bash"


@dataclass(frozen=True)
class SlurmQos:
    """A Slurm QOS for an access track: its priority, longest wall time, and whether jobs
    under it may be preempted."""

    name: str
    priority: int
    max_wall_minutes: int | None
    preemptible: bool = False


@dataclass(frozen=True)
class SlurmAccount:
    """A project as a Slurm account. `gpu_minutes`: the GPU-minutes (raw, as Slurm counts
    gres/gpu) the project may still use at this site, from what is left of its allocations
    that this site may spend. `counted_gpu_minutes`: the GPU-minutes of this account's jobs
    at this site that Fabriek has already charged. The agent sets the account's
    GrpTRESMins=gres/gpu= limit to counted + left: whatever Slurm has counted beyond what
    Fabriek has charged (jobs not harvested yet) is spent from what is left at once, so a
    budget is never granted twice. Without `counted_gpu_minutes` (an older control plane)
    the agent uses Slurm's own count instead. 0 left stops new jobs (an allocation that ran
    out, was suspended or expired). `qos`: the QOS its jobs may use, the first its
    default."""

    name: str
    gpu_minutes: int
    qos: tuple[str, ...] = ()
    description: str = ""
    counted_gpu_minutes: int | None = None


@dataclass(frozen=True)
class SlurmAssociation:
    """A person's association with a project's Slurm account: they may submit under it."""

    user: str
    account: str


@dataclass(frozen=True)
class DesiredState:
    """Everything the site's agent keeps true at its site."""

    site: str
    cluster: str
    groups: tuple[PosixGroup, ...] = ()
    users: tuple[PosixUser, ...] = ()
    qos: tuple[SlurmQos, ...] = ()
    accounts: tuple[SlurmAccount, ...] = ()
    associations: tuple[SlurmAssociation, ...] = ()
    # The factory's SSH certificate authority's public key (OpenSSH form), for the login
    # nodes' TrustedUserCAKeys; None while the factory has none.
    ssh_ca_public_key: str | None = None

    @property
    def generation(self) -> str:
        """A hash of the content: equal states have equal generations."""
        body = json.dumps(_content(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(body.encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        """The JSON form, with its generation."""
        return {**_content(self), "generation": self.generation}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DesiredState:
        """Read the JSON form; raises ValueError when it is not one, or when its
        generation does not match its content (a state changed on the way)."""
        try:
            state = cls(
                site=str(data["site"]),
                cluster=str(data["cluster"]),
                groups=tuple(PosixGroup(**g) for g in data.get("groups", ())),
                users=tuple(
                    PosixUser(
                        **{
                            **u,
                            "groups": tuple(u.get("groups", ())),
                            "ssh_keys": tuple(u.get("ssh_keys", ())),
                        }
                    )
                    for u in data.get("users", ())
                ),
                qos=tuple(SlurmQos(**q) for q in data.get("qos", ())),
                accounts=tuple(
                    SlurmAccount(**{**a, "qos": tuple(a.get("qos", ()))})
                    for a in data.get("accounts", ())
                ),
                associations=tuple(SlurmAssociation(**a) for a in data.get("associations", ())),
                ssh_ca_public_key=data.get("ssh_ca_public_key"),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a desired state of a site: {exc}") from None
        given = data.get("generation")
        if given is not None and given != state.generation:
            raise ValueError("the desired state's generation does not match its content")
        return state


def _content(state: DesiredState) -> dict[str, Any]:
    # Sorted, so that the same state in another order hashes the same.
    raw = asdict(state)
    for key, sort_key in (
        ("groups", "name"),
        ("users", "username"),
        ("qos", "name"),
        ("accounts", "name"),
    ):
        raw[key] = sorted(raw[key], key=lambda item, k=sort_key: item[k])  # type: ignore[misc]
    raw["associations"] = sorted(raw["associations"], key=lambda a: (a["account"], a["user"]))
    for user in raw["users"]:
        user["groups"] = sorted(user["groups"])
        user["ssh_keys"] = sorted(user["ssh_keys"])
    return raw


@dataclass(frozen=True)
class Change:
    """One thing the agent changed, found changed by hand, or could not do: `kind` and
    `name` say what (a user, an account, ...), `detail` says how, in words."""

    kind: ChangeKind
    name: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "detail": self.detail}


@dataclass(frozen=True)
class AgentReport:
    """The agent's answer to one desired state.

    `applied`: changes made to reach the state (a new user, a new limit). `drift`: things
    found changed by hand since the last report (a GrpTRESMins someone raised, a deleted
    association), each also put back unless it is in `errors`. `errors`: what could not be
    done (a username or UID already taken by another account at the site), with why."""

    generation: str
    applied: tuple[Change, ...] = ()
    drift: tuple[Change, ...] = ()
    errors: tuple[Change, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "applied": [c.to_json() for c in self.applied],
            "drift": [c.to_json() for c in self.drift],
            "errors": [c.to_json() for c in self.errors],
            "details": self.details,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AgentReport:
        """Read the JSON form; raises ValueError when it is not one."""
        try:
            return cls(
                generation=str(data["generation"]),
                applied=tuple(Change(**c) for c in data.get("applied", ())),
                drift=tuple(Change(**c) for c in data.get("drift", ())),
                errors=tuple(Change(**c) for c in data.get("errors", ())),
                details=dict(data.get("details", {})),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a site agent's report: {exc}") from None
