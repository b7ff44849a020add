"""Container image names and who may use which: pure rules, no I/O.

A name follows the Docker reference grammar (CNCF Distribution's `reference` package):
`[host[:port]/]path[:tag][@sha256:digest]`, and Pyxis's `host#path[:tag]` is read the same.
Unlike Docker, a name without a host means *the factory's own registry*, never a public
one: sovereignty is the default, and an upstream registry is used only where the operator
allows it by name. A one-component name (`python:3.12`) is the shared `library/` namespace,
as Docker reads it.

Scoping: the repository `<project>/<name...>` belongs to that project; its members push and
pull it, nobody else pulls it (admins may, to help). `library/<name...>` holds images shared
with every user: anyone signed in pulls them, admins push them. A job's pull credential
pulls only its project's repositories and `library/`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, Field

SHARED_NAMESPACE = "library"
DEFAULT_TAG = "latest"
MAX_NAME_LENGTH = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]*)"
_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_PATH = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_COMPONENT_RE = re.compile(rf"^{_COMPONENT}$")
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"^{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class BadImageName(ValueError):
    """An image name the reference grammar does not allow; the message says what is wrong."""


@dataclass(frozen=True)
class ImageRef:
    """A parsed image name. `registry` None: the factory's own registry."""

    registry: str | None
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def project(self) -> str:
        """The namespace the repository is in: a project's name, or `library`."""
        return self.repository.split("/", 1)[0]

    def on(self, own: str) -> str:
        """The registry it is pulled from, with `own` standing for the factory's."""
        return self.registry or own

    def reference(self, own: str) -> str:
        """The full name a runtime pulls: host/repository, then :tag and/or @digest."""
        text = f"{self.on(own)}/{self.repository}"
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    def pinned(self, own: str, digest: str) -> str:
        """host/repository@digest: the exact image, whatever its tag points at later."""
        return f"{self.on(own)}/{self.repository}@{digest}"

    @property
    def manifest_ref(self) -> str:
        """What to ask the registry's manifest endpoint for: the digest, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG


def _looks_like_host(part: str) -> bool:
    # Docker's rule: a first component with a dot or a port, or `localhost`, is a host.
    return "." in part or ":" in part or part == "localhost" or part != part.lower()


def parse_image(text: str) -> ImageRef:
    """An image name read per the reference grammar (see the module), or BadImageName."""
    name = text.strip()
    if name.startswith("docker://"):  # Apptainer's and Enroot's way of naming the same
        name = name[len("docker://") :]
    if not name:
        raise BadImageName("the image name is empty")
    host: str | None = None
    if "#" in name:  # Pyxis: registry#path
        host, _, name = name.partition("#")
        if not host:
            raise BadImageName(f"{text!r}: nothing before '#' (Pyxis writes host#path)")
    digest = None
    if "@" in name:
        name, _, digest = name.partition("@")
        if not _DIGEST.match(digest):
            raise BadImageName(f"{text!r}: the digest must be sha256: and 64 hex digits")
    tag = None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, _, tag = name.rpartition(":")
        if not _TAG.match(tag):
            raise BadImageName(f"{text!r}: {tag!r} is not a valid tag")
    first, slash, rest = name.partition("/")
    if host is None and slash and _looks_like_host(first):
        host, name = first, rest
    if host is not None and not _DOMAIN.match(host):
        raise BadImageName(f"{text!r}: {host!r} is not a registry host[:port]")
    if name and "/" not in name and host is None:
        name = f"{SHARED_NAMESPACE}/{name}"
    if not _PATH.match(name):
        raise BadImageName(
            f"{text!r}: a repository is lowercase letters and digits in parts separated "
            "by '/', each part joined only by '.', '_', '__' or dashes"
        )
    if len(name) + len(host or "") + 1 > MAX_NAME_LENGTH:
        raise BadImageName(f"{text!r}: a name is at most {MAX_NAME_LENGTH} characters")
    return ImageRef(host, name, tag, digest)


def is_allowed(image: ImageRef, own: str | None, upstreams: Iterable[str]) -> bool:
    """Whether the factory may pull this image: its own registry, or an upstream the operator
    allows by its exact host[:port] (registry hosts compare without case)."""
    if image.registry is None:
        return own is not None
    host = image.registry.lower()
    return host == (own or "").lower() or host in {u.lower() for u in upstreams}


# --- Who may do what: the registry's token scopes. ---------------------------------------------


class Action(StrEnum):
    PULL = "pull"
    PUSH = "push"


@dataclass(frozen=True)
class Scope:
    """One access asked of or granted by the token service: `repository:NAME:pull,push`."""

    type: str
    name: str
    actions: frozenset[str]

    def to_claim(self) -> dict[str, object]:
        """As a token's `access` entry."""
        return {"type": self.type, "name": self.name, "actions": sorted(self.actions)}


def parse_scope(text: str) -> Scope | None:
    """A `scope` parameter (`type[(class)]:name:actions`); None when it is not one."""
    head, sep, actions = text.rpartition(":")
    kind, sep2, name = head.partition(":")
    if not sep or not sep2 or not kind or not name:
        return None
    kind = kind.split("(", 1)[0]  # `repository(plugin)`: the class does not change the rules
    return Scope(kind, name, frozenset(a for a in actions.split(",") if a))


@dataclass(frozen=True)
class Grantee:
    """Whoever asks for a token: a person's projects, or a job's pull credential (one
    project, pull only)."""

    projects: frozenset[str]
    is_admin: bool = False
    pull_only: bool = False


def allowed_actions(who: Grantee, repository: str) -> frozenset[str]:
    """What `who` may do to `repository` (see the module for the rules)."""
    if not _PATH.match(repository):
        return frozenset()
    namespace = repository.split("/", 1)[0]
    if "/" not in repository:  # a bare name is nobody's: push nothing there, pull nothing
        return frozenset()
    if namespace == SHARED_NAMESPACE:
        may_push = who.is_admin and not who.pull_only
        return frozenset({Action.PULL.value} | ({Action.PUSH.value} if may_push else set()))
    if namespace in who.projects:
        push = set() if who.pull_only else {Action.PUSH.value}
        return frozenset({Action.PULL.value} | push)
    if who.is_admin and not who.pull_only:
        return frozenset({Action.PULL.value})
    return frozenset()


def grant(who: Grantee, asked: Iterable[Scope]) -> list[Scope]:
    """What is granted: each asked repository scope cut to what `who` may do; the catalogue
    (`registry:catalog:*`) to admins only; anything else never. Empty grants are left out."""
    out: list[Scope] = []
    for scope in asked:
        if scope.type == "repository":
            actions = scope.actions & allowed_actions(who, scope.name)
        elif scope.type == "registry" and scope.name == "catalog" and who.is_admin:
            actions = scope.actions & {"*"}
        else:
            actions = frozenset()
        if actions:
            out.append(Scope(scope.type, scope.name, actions))
    return out


class ProjectImage(BaseModel):
    """One of a project's repositories in the factory's registry, with its tags."""

    repository: str = Field(description="PROJECT/NAME, as pushed")
    tags: list[str] = Field(default_factory=list)
