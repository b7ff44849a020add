"""What a login node's sshd runs at every login, as the site's agent:

    AuthorizedKeysCommand       fabriek site-agent authorized-keys --url ... --site ... --token-file ... %u
    AuthorizedPrincipalsCommand fabriek site-agent principals      --url ... --site ... --token-file ... %u

Both ask the control plane with the site's token, so that revoking a key, removing a person
from their last project or their leaving an organisation holds from the next login, even
for a certificate still valid. They fail closed: when the control plane cannot be asked,
they print nothing and exit non-zero, and sshd lets no one in by that way.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

import typer

from fabriek.sdk import ApiError, ApiUnreachable
from fabriek.sdk.site_agent import SiteAgentClient

# What sshd may hand over as %u; anything else is no person of ours.
_USERNAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
# Exit status when the control plane could not be asked (sshd then refuses this way in).
UNANSWERED = 1
# A login waits for this at most: sshd itself gives up on a slow command much later.
TIMEOUT_S = 10.0

Url = Annotated[
    str, typer.Option("--url", envvar="FABRIEK_URL", help="the control plane's address")
]
Site = Annotated[str, typer.Option("--site", envvar="FABRIEK_SITE", help="this site's name")]
TokenFile = Annotated[
    Path,
    typer.Option(
        "--token-file",
        envvar="FABRIEK_SITE_TOKEN_FILE",
        help="the file holding the site's agent token (readable by sshd's command user only)",
    ),
]
Username = Annotated[str, typer.Argument(help="the Unix username logging in (sshd's %u)")]


def _ask(url: str, site: str, token_file: Path, path: str, field: str) -> list[str]:
    try:
        token = token_file.read_text().strip()
    except OSError as exc:
        raise _unanswered(f"cannot read the site token {token_file}: {exc.strerror}") from None
    try:
        with SiteAgentClient(url, site, token, timeout=TIMEOUT_S) as agent:
            answer = agent.get(path)
    except (ApiError, ApiUnreachable) as exc:
        raise _unanswered(f"the control plane did not answer: {exc}") from None
    values = answer.get(field, []) if isinstance(answer, dict) else []
    return [str(v) for v in values if isinstance(v, str) and "\n" not in v]


def _unanswered(message: str) -> typer.Exit:
    # sshd logs a command's standard error: the operator reads why logins are refused.
    print(f"fabriek site-agent: {message}", file=sys.stderr)
    return typer.Exit(UNANSWERED)


def authorized_keys(username: Username, url: Url, site: Site, token_file: TokenFile) -> None:
    """Print the registered, unrevoked public keys of USERNAME, one a line (sshd's
    AuthorizedKeysCommand); nothing for an unknown or locked person."""
    if not _USERNAME.match(username):
        return
    for line in _ask(url, site, token_file, f"/ssh-keys/{quote(username)}", "keys"):
        print(line)


def principals(username: Username, url: Url, site: Site, token_file: TokenFile) -> None:
    """Print USERNAME when that person may log in now (sshd's AuthorizedPrincipalsCommand,
    for certificates); nothing otherwise."""
    if not _USERNAME.match(username):
        return
    for name in _ask(url, site, token_file, f"/principals/{quote(username)}", "principals"):
        if name == username:
            print(name)


def register(group: typer.Typer) -> None:
    """Add `authorized-keys` and `principals` to the `site-agent` group."""
    group.command("authorized-keys")(authorized_keys)
    group.command("principals")(principals)
