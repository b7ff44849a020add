"""The `fabriek` entry point: every command, and one-line errors instead of tracebacks."""

from __future__ import annotations

import sys
import traceback

import typer

from fabriek.cli import ai_systems as _ai_system_commands  # noqa: F401
from fabriek.cli import allocations as _allocation_commands  # noqa: F401
from fabriek.cli import audit as _audit_commands  # noqa: F401
from fabriek.cli import datasets as _dataset_commands  # noqa: F401
from fabriek.cli import experts as _expert_commands  # noqa: F401
from fabriek.cli import jobs as _job_commands  # noqa: F401  (registers the job commands)
from fabriek.cli import knowledge as _knowledge_commands  # noqa: F401
from fabriek.cli import models as _model_commands  # noqa: F401
from fabriek.cli import notifications as _notification_commands  # noqa: F401
from fabriek.cli import proposals as _access_commands  # noqa: F401
from fabriek.cli import sandboxes as _sandbox_commands  # noqa: F401
from fabriek.cli import support as _support_commands  # noqa: F401
from fabriek.cli import usage as _usage_commands  # noqa: F401
from fabriek.cli.app import app
from fabriek.cli.config import NotSignedIn
from fabriek.domain.errors import FabriekError, InvalidInput
from fabriek.sdk import ApiError, ApiUnreachable
from fabriek.sdk.transfer import TransferFailed
from fabriek.server import commands as server_commands
from fabriek.server import grid as grid_commands
from fabriek.server import heat as heat_commands
from fabriek.server import sim as sim_command

server_commands.register(app)
grid_commands.register(app)
heat_commands.register(app)
app.command()(sim_command.sim)

# Exit codes: 2 for input the user must change (like a usage error), 1 for everything else.
BAD_INPUT = 2
FAILURE = 1


def exit_code_for(exc: BaseException) -> int:
    if isinstance(exc, ApiError):
        return BAD_INPUT if exc.status in {400, 422} else FAILURE
    if isinstance(exc, InvalidInput):
        return BAD_INPUT
    return FAILURE


def main(argv: list[str] | None = None) -> None:
    """Run a command; on error print one line to stderr (`--debug` for the traceback)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args.remove("--debug")
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
        print(f"fabriek: {' '.join(str(message).split())}", file=sys.stderr)
        sys.exit(BAD_INPUT)
    except (ApiError, ApiUnreachable, FabriekError, NotSignedIn, OSError, TransferFailed) as exc:
        if debug:
            traceback.print_exc()
        print(f"fabriek: {exc}", file=sys.stderr)
        sys.exit(exit_code_for(exc))
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # the promise: no traceback unless asked for
        if debug:
            traceback.print_exc()
        print(f"fabriek: unexpected error: {exc!r} (run with --debug for details)", file=sys.stderr)
        sys.exit(FAILURE)


if __name__ == "__main__":
    main()
