"""The `fabriek` command starts without the server: a client command imports its own
module, the SDK and its capability's domain values, never FastAPI, SQLAlchemy, uvicorn or
the server's layers; server commands import their stack only when they run. (How fast it
starts is measured in bench/cli_startup.py, not asserted here.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from fabriek.cli import catalogue
from fabriek.cli.app import app
from fabriek.services.demo.seed import demo_token
from tests.servers import LiveServer

SERVER_STACK = ("fastapi", "starlette", "sqlalchemy", "uvicorn", "alembic")
SERVER_LAYERS = ("services", "store", "api", "web", "engines", "server", "scheduler")


def loaded_by(*args: str, env: dict[str, str] | None = None) -> set[str]:
    """The modules a fresh interpreter holds after `fabriek ARGS` (which must succeed)."""
    script = (
        "import json, sys\n"
        "from fabriek.main import main\n"
        "try:\n"
        f"    main({list(args)!r})\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, **(env or {})},
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def server_side(modules: set[str]) -> set[str]:
    return {
        m
        for m in modules
        if m.split(".")[0] in SERVER_STACK
        or (m.startswith("fabriek.") and m.split(".")[1] in SERVER_LAYERS)
    }


def test_importing_the_cli_imports_no_server() -> None:
    script = "import sys, fabriek.cli.app, fabriek.main; print(' '.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    modules = set(done.stdout.split())
    assert "fabriek.cli.app" in modules
    assert server_side(modules) == set()


def test_help_lists_every_command_without_importing_them() -> None:
    modules = loaded_by("--help")
    assert server_side(modules) == set()
    # Not even the HTTP client or the domain values: the listing comes from the catalogue.
    assert not {m for m in modules if m.split(".")[0] in {"httpx", "pydantic"}}
    assert not {m for m in modules if m.startswith(("fabriek.domain.", "fabriek.sdk."))} - {
        "fabriek.domain.errors",
        "fabriek.sdk.errors",
    }


def test_help_imports_no_rich() -> None:
    # The root's listing is Click's plain layout: Rich and Typer's Rich help (Markdown,
    # tracebacks) cost more than the rest of `fabriek --help` together.
    modules = loaded_by("--help")
    assert not {m for m in modules if m.split(".")[0] in {"rich", "pygments"}}
    assert "typer.rich_utils" not in modules


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_listing_jobs_from_a_server_imports_no_server(server: LiveServer, tmp_path: Path) -> None:
    env = {
        "FABRIEK_URL": server.url,
        "FABRIEK_TOKEN": demo_token("maria").token,
        "FABRIEK_CONFIG_DIR": str(tmp_path / "cfg"),
    }
    modules = loaded_by("jobs", env=env)
    assert "fabriek.cli.jobs" in modules and "httpx" in modules  # it did ask the server
    assert server_side(modules) == set()
    # Nor httpx's own command line (Click, Rich's progress bars, Pygments), which a client
    # command never runs.
    assert not {"click", "pygments", "rich.progress", "rich.syntax"} & modules
    assert "typer.rich_utils" not in modules
    # Nor Pydantic (50-100 ms of the command's start): the listing is shown as the API sent
    # it, and Typer parses the options with its own Click.
    assert not {m for m in modules if m.split(".")[0] in {"pydantic", "pydantic_core"}}


def test_a_client_command_imports_its_own_capability_only() -> None:
    modules = loaded_by("jobs", "--help")
    assert server_side(modules) == set()
    assert "fabriek.cli.jobs" in modules and "fabriek.sdk.client" in modules
    assert not {m for m in modules if m.startswith("fabriek.cli.support")}
    assert "fabriek.sdk.support" not in modules and "fabriek.domain.support" not in modules
    # A job's AI Act warning is a small value of its own: no AI Act rules for job commands.
    assert not {"fabriek.domain.ai_act.models", "fabriek.domain.ai_act.model_rules"} & modules


def test_a_server_command_imports_its_stack_when_it_runs() -> None:
    modules = loaded_by("db", "--help")
    assert "fabriek.cli.jobs" not in modules
    assert {"sqlalchemy"} <= modules


def test_the_catalogue_lists_every_command_and_only_those() -> None:
    listed = catalogue.entries()
    for name in listed:
        command = catalogue.load(name)
        assert command.name == name
        assert command.short_help == listed[name].summary
    registered = typer.main.get_command(app)
    assert isinstance(registered, typer.core.TyperGroup)
    built = {n for n, c in registered.commands.items() if not isinstance(c, catalogue.StandIn)}
    assert built == set(listed), "a command is missing from the catalogue, or one too many"
    for name, entry in listed.items():
        assert "\n" not in entry.summary and len(entry.summary) <= 90, name


def test_help_and_fabriek_alone_list_every_command_on_stdout() -> None:
    env = {**os.environ, "COLUMNS": "200"}
    shown = subprocess.run(
        [sys.executable, "-m", "fabriek.main", "--help"],
        capture_output=True, text=True, timeout=60, env=env, check=True,
    ).stdout  # fmt: skip
    for name, entry in catalogue.entries().items():
        assert f"  {name}  " in shown and entry.summary in shown, name
    alone = subprocess.run(
        [sys.executable, "-m", "fabriek.main"], capture_output=True, text=True, timeout=60, env=env
    )
    # As Click's `no_args_is_help`: the same listing, exit status 2, no error line.
    assert alone.returncode == 2 and alone.stdout.strip() == shown.strip() and not alone.stderr
