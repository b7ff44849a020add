"""The `fabriek` entry point: every command, and one-line errors instead of tracebacks."""

from __future__ import annotations

import os
import sys

import typer
from typer._click.exceptions import NoArgsIsHelpError

from fabriek.cli import catalogue
from fabriek.cli.app import app
from fabriek.cli.config import NotSignedIn
from fabriek.domain.errors import FabriekError, InvalidInput
from fabriek.sdk import ApiError, ApiUnreachable, TransferFailed

# The server's own commands, after the client ones. They are imported by name when run, never
# by a client command: the server stack (FastAPI, SQLAlchemy, uvicorn, the services) takes
# a second to import, which `fabriek jobs` should not pay.
for _name, _module, _summary, _register in (
    ("serve", "fabriek.server.commands", "Serve the API and the portal.", "register"),
    ("db", "fabriek.server.commands", "The store's schema.", "register"),
    ("demo", "fabriek.server.commands", "The demo factory.", "register"),
    ("report", "fabriek.server.commands", "Reports from the store.", "register"),
    ("backup", "fabriek.server.backup", "Back up the database and the dataset store.",
     "register"),
    ("restore", "fabriek.server.backup", "Restore a backup into a fresh database.", "register"),
    ("grid", "fabriek.server.grid", "Grid data: hourly carbon intensity per zone.", "register"),
    ("heat", "fabriek.server.heat", "Heat demand: hourly district-heat demand per zone.",
     "register"),
    ("federation", "fabriek.server.federation",
     "The EuroHPC federation platform: its orders in, usage back.", "register"),
):  # fmt: skip
    catalogue.add(_name, _module, _summary, register=_register)
# The site's own commands (login nodes' SSH look-ups, the agent), imported only when run.
catalogue.add(
    "site-agent",
    "fabriek.site_agent.cli",
    "Commands that run at a site: the login nodes' SSH look-ups, the agent itself.",
    register="register",
)
catalogue.add(
    "sim",
    "fabriek.server.sim",
    "Replay a trace with the scheduler production runs; print the quality metrics.",
    command="sim",
)

# Exit codes: 2 for input the user must change (like a usage error), 1 for everything else.
BAD_INPUT = 2
FAILURE = 1


def exit_code_for(exc: BaseException) -> int:
    if isinstance(exc, ApiError):
        return BAD_INPUT if exc.status in {400, 422} else FAILURE
    if isinstance(exc, InvalidInput):
        return BAD_INPUT
    return FAILURE


def _print_traceback() -> None:
    # Imported here, not at the top: only --debug needs it, and every command would pay
    # its import (traceback, linecache, tokenize: 5-8 ms) at start-up.
    import traceback

    traceback.print_exc()


def _client_command(args: list[str]) -> bool:
    """Whether ARGS run a client command (one that talks to a server), not a server's own."""
    name = next((a for a in args if not a.startswith("-")), None)
    entry = catalogue.entries().get(name or "")
    return entry is not None and entry.module.startswith("fabriek.cli.")


def _start_lean() -> None:
    """Spare a client command imports and scans that it never uses: what a user at the
    terminal waits for (bench/cli_startup.py measures it)."""
    # Pydantic looks for plugins in every installed package's entry points (importlib
    # metadata: 10-20 ms) when it builds its first validator; a client command uses none.
    # The documented switch; a setting the user made stays as it is.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    # httpx imports its own command line (httpx._main: Click, Rich's progress bars and syntax
    # highlighting, Pygments: some 40 ms) whenever Click and Rich are installed, and falls
    # back to a stub where that import fails. Nothing here runs httpx's command line.
    if "httpx" not in sys.modules and "httpx._main" not in sys.modules:
        sys.modules["httpx._main"] = None  # type: ignore[assignment]  # import fails, as meant


def main(argv: list[str] | None = None) -> None:
    """Run a command; on error print one line to stderr (`--debug` for the traceback)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args.remove("--debug")
    if _client_command(args):
        _start_lean()
    try:
        code = app(args=args, standalone_mode=False)
        # Without standalone mode, a command that raises Exit(n) returns n instead.
        if isinstance(code, int) and code:
            sys.exit(code)
    except typer.Abort:
        print("fabriek: aborted", file=sys.stderr)
        sys.exit(FAILURE)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:
        # Usage errors (unknown option, bad value): the command line must change.
        format_message = getattr(exc, "format_message", None)
        message = format_message() if callable(format_message) else str(exc)
        if isinstance(exc, NoArgsIsHelpError) and message:
            # `fabriek` alone: the root's plain help comes back as the message (Rich help,
            # a group's, is printed already and leaves it empty). Help, not an error line.
            print(message)
            sys.exit(BAD_INPUT)
        print(f"fabriek: {' '.join(str(message).split())}", file=sys.stderr)
        sys.exit(BAD_INPUT)
    except (ApiError, ApiUnreachable, FabriekError, NotSignedIn, OSError, TransferFailed) as exc:
        if debug:
            _print_traceback()
        print(f"fabriek: {exc}", file=sys.stderr)
        sys.exit(exit_code_for(exc))
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # the promise: no traceback unless asked for
        if debug:
            _print_traceback()
        print(f"fabriek: unexpected error: {exc!r} (run with --debug for details)", file=sys.stderr)
        sys.exit(FAILURE)


if __name__ == "__main__":
    main()
