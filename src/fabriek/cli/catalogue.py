"""Which module holds each `fabriek` command, so that a command imports its own module only.

Importing every command module (and with them the domain values of every capability and
the SDK's sub-clients) costs more than the command itself: `fabriek jobs` would import the
AI Act's rule book and the support desk's ticket shapes. The root group therefore lists
the commands from this catalogue, with a one-line summary each for `fabriek --help`, and
imports a command's module only when that command is run (or asked for its own help).
The same mechanism keeps the server's commands (`serve`, `db`, ...) from being imported
by the client ones: `fabriek.main` adds them by module name.
"""

from __future__ import annotations

import importlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import typer

# Typer carries its own copy of Click; its group and command classes are built on these.
from typer._click import Command, Context, HelpFormatter
from typer.core import TyperCommand, TyperGroup


@dataclass(frozen=True)
class Entry:
    """Where a top-level command lives. `register`, when given, is a function of the module
    that adds its commands to the app, `command` a command function of it to add as the
    name; otherwise importing the module adds them."""

    module: str
    summary: str
    register: str | None = None
    command: str | None = None


_ENTRIES: dict[str, Entry] = {}
_APP: list[typer.Typer] = []
_REGISTERED: set[tuple[str, str]] = set()


def add(
    name: str,
    module: str,
    summary: str,
    register: str | None = None,
    command: str | None = None,
) -> None:
    """List a top-level command: its name as typed, its module, its line in `--help`."""
    _ENTRIES[name] = Entry(module, summary, register, command)


def entries() -> dict[str, Entry]:
    """Every listed command, in the order `fabriek --help` shows them."""
    return dict(_ENTRIES)


def serve_from(app: typer.Typer) -> None:
    """Name the Typer app the listed modules register their commands on."""
    _APP[:] = [app]


def load(name: str) -> Command:
    """Import the module of a listed command and build that command (as Typer would)."""
    entry = _ENTRIES[name]
    (app,) = _APP
    module = importlib.import_module(entry.module)
    # A module's register function adds several commands: call it once, whichever comes first.
    if entry.register and (entry.module, entry.register) not in _REGISTERED:
        register: Callable[[typer.Typer], None] = getattr(module, entry.register)
        register(app)
        _REGISTERED.add((entry.module, entry.register))
    if entry.command and (entry.module, name) not in _REGISTERED:
        app.command(name)(getattr(module, entry.command))
        _REGISTERED.add((entry.module, name))
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    command = group.commands[name]
    assert not isinstance(command, StandIn), f"{entry.module} does not define {name!r}"
    # The listing line is the catalogue's, loaded or not: one text, never two.
    command.short_help = entry.summary
    return command


class StandIn(TyperCommand):
    """A listed command not imported yet: enough for `--help` and for typo suggestions."""


class CommandCatalogue(TyperGroup):
    """The root group: lists the catalogue, imports a command only when it is resolved."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for name, entry in _ENTRIES.items():
            self.commands.setdefault(
                name, StandIn(name=name, short_help=entry.summary, help=entry.summary)
            )

    def resolve_command(
        self, ctx: Context, args: list[str]
    ) -> tuple[str | None, Command | None, list[str]]:
        if args and isinstance(self.commands.get(args[0]), StandIn):
            self.commands[args[0]] = load(args[0])
        return super().resolve_command(ctx, args)

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        # Click's plain layout for the root's listing: Typer's Rich panels import Rich and
        # typer.rich_utils (Markdown, tracebacks: some 70 ms), which `fabriek --help` would
        # pay for a list of names. A command's own help keeps Typer's Rich layout. As wide as
        # the terminal, as Rich's was, rather than Click's 80 columns: one line a command.
        formatter.width = max(formatter.width, shutil.get_terminal_size().columns - 2)
        Command.format_help(self, ctx, formatter)
