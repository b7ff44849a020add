"""Commands that run the server side itself: serve, migrate, load the demo.

They live outside `cli/` because they build the server (API, services, store) rather than
talk to one; `fabriek.main` puts them beside the client commands.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from fabriek.cli.output import console, print_json, print_table
from fabriek.domain import eed
from fabriek.domain.errors import Conflict, InvalidInput
from fabriek.server.app import build_app
from fabriek.services.demo import history, seed
from fabriek.services.energy import eed_report
from fabriek.settings import Settings
from fabriek.store.db import make_engine, make_sessions, redact
from fabriek.store.migrate import require_current, upgrade

db_app = typer.Typer(help="The store's schema.", no_args_is_help=True)
demo_app = typer.Typer(help="The demo factory.", no_args_is_help=True)
report_app = typer.Typer(help="Reports from the store.", no_args_is_help=True)


# The demo user `make up` tells a newcomer to sign in as: a member of projects with GPU-hours,
# so the README's first `fabriek run` works (the admin is in no project).
DEMO_MEMBER = "maria"


def require_free_port(host: str, port: int) -> None:
    """Refuse before saying "serves", in one line, when another process holds the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As uvicorn binds: a port held only by closed connections (TIME_WAIT) is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise Conflict(
                f"cannot serve on {host}:{port}: {exc.strerror or exc}; "
                "choose another port with --port or FABRIEK_PORT"
            ) from None


def demo_user_line(user: seed.DemoUser) -> str:
    """`pieter    principal-investigator of dutch-llm`: what a demo user may do."""
    parts = [r for r in user.roles if r != "member"]
    by_role: dict[str, list[str]] = {}
    for project, role in user.projects.items():
        by_role.setdefault(role, []).append(project)
    parts += [f"{role} of {', '.join(projects)}" for role, projects in by_role.items()]
    return f"{user.username:<8} {'; '.join(parts) or 'in no project'}"


def print_demo_sign_in(url: str) -> None:
    """How to sign in as the demo's member, and who else the demo has."""
    users = seed.demo_users()
    member = next(u for u in users if u.username == DEMO_MEMBER)
    projects = ", ".join(member.projects)
    console.print(f"Demo factory loaded. Sign in as {member.username}, member of {projects}:")
    console.print(f"  fabriek login --url {url} --token {member.token}", soft_wrap=True)
    console.print("Demo users (their tokens: `fabriek demo load --json`):")
    for user in users:
        console.print(f"  {demo_user_line(user)}", soft_wrap=True)


def serve(
    port: Annotated[int | None, typer.Option(help="port (default FABRIEK_PORT or 8000)")] = None,
    host: Annotated[str | None, typer.Option(help="address (default 127.0.0.1)")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, max=64, help="API processes (default FABRIEK_WORKERS or 1)")
    ] = None,
) -> None:
    """Serve the API and the portal."""
    started = time.perf_counter()
    # Options become the environment too: worker processes read their settings from it.
    for name, value in (
        ("FABRIEK_PORT", port),
        ("FABRIEK_HOST", host),
        ("FABRIEK_WORKERS", workers),
    ):
        if value:
            os.environ[name] = str(value)
    settings = Settings()
    app = build_app(settings)
    require_free_port(settings.host, settings.port)
    url = f"http://{settings.host}:{settings.port}"
    console.print(f"Fabriek serves {url} on {redact(settings.database_url)}")
    with make_sessions(app.state.context.engine)() as session:
        if seed.is_loaded(session):
            print_demo_sign_in(url)
    logging.basicConfig(level=settings.log_level.upper())
    console.print(f"Ready to start after {time.perf_counter() - started:.2f} s", style="dim")
    if settings.workers > 1:
        app.state.context.engine.dispose()  # this process only checked; the workers serve
        uvicorn.run(
            "fabriek.server.app:build_app", factory=True, workers=settings.workers,
            host=settings.host, port=settings.port, log_level=settings.log_level,
            access_log=False,
        )  # fmt: skip
        return
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=settings.log_level, access_log=False
    )
    uvicorn.Server(config).run()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database to this version's schema."""
    settings = Settings()
    before, after = upgrade(make_engine(settings.database_url))
    where = redact(settings.database_url)
    if before == after:
        console.print(f"{where}: schema is current ({after})")
    else:
        console.print(f"{where}: migrated from {before or 'empty'} to {after}")


@demo_app.command("load")
def demo_load(
    as_json: Annotated[bool, typer.Option("--json", help="print the demo users as JSON")] = False,
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="do nothing when the database holds data")
    ] = False,
) -> None:
    """Load the demo factory into an empty database; print its users and tokens."""
    settings = Settings()
    engine = make_engine(settings.database_url)
    require_current(engine)
    with make_sessions(engine)() as session:
        if seed.is_loaded(session):
            pass
        elif seed.is_empty(session):
            now = datetime.now(UTC)
            seed.load_demo(session, now)
            # A year of use, so the dashboards have something to show.
            history.load_history(session, now)
        elif if_empty:
            console.print("The database already holds a factory; the demo was not loaded.")
            return
        else:
            seed.load_demo(session, datetime.now(UTC))  # raises the Conflict with its reason
    users = seed.demo_users()
    if as_json:
        print_json([u.__dict__ for u in users])
        return
    console.print("Demo factory loaded. Demo users (tokens are public: demo only):")
    for u in users:
        console.print(f"  {u.username:<8} {', '.join(u.roles):<28} {u.token}", soft_wrap=True)


@report_app.command("eed")
def report_eed(
    year: Annotated[int, typer.Option(min=2020, max=2100, help="the calendar year reported")],
    site: Annotated[str | None, typer.Option(help="one site (default: every site)")] = None,
    figures: Annotated[
        Path | None,
        typer.Option(help="the operator's figures, TOML (default: the demo factory's)"),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="table, json or csv (default: table, json into --out)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the JSON document")] = False,
    out: Annotated[Path | None, typer.Option(help="write here instead of standard output")] = None,
) -> None:
    """The EU data-centre report (EED Art. 12, Reg. (EU) 2024/1364) per site: a summary to
    read, `--json` or `--format csv` for the document; exits non-zero when a report fails
    validation (2, after writing the reports)."""
    fmt = "json" if as_json else fmt or ("json" if out else "table")
    if fmt not in ("table", "json", "csv"):
        raise InvalidInput(f"--format must be table, json or csv, not {fmt!r}")
    settings = Settings()
    engine = make_engine(settings.database_url)
    require_current(engine)
    operator = eed_report.load_operator_figures(figures)
    with make_sessions(engine)() as session:
        reports = eed_report.build_reports(session, year, operator, site)
    text = eed.to_json(reports) if fmt == "json" else eed.to_csv(reports)
    if fmt == "table":
        print_eed_summary(reports, out)
    elif out is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        out.write_text(text)
    errors = [e for r in reports for e in r.errors]
    if errors:
        raise InvalidInput(f"{len(errors)} validation error(s): " + "; ".join(errors))
    # Not errors: what each operator still owes, so the next year's file can be completed.
    for r in reports:
        if r.owed:
            print(f"{r.site} {year}: valid; owed: {', '.join(r.owed)}", file=sys.stderr)


def print_eed_summary(reports: list[eed.EedReport], out: Path | None) -> None:
    """The reports as a person reads them: each site's KPIs side by side, and how complete
    each site's indicators are."""
    if out is not None:
        raise InvalidInput("--out writes the document: add --format json or --format csv")
    if not reports:
        console.print("No site to report on.")
        return
    sites = [r.site for r in reports]
    rows = [
        (
            k.name,
            k.unit,
            *("-" if r.kpi(k.key) is None else f"{r.kpi(k.key):,.3f}" for r in reports),
        )
        for k in reports[0].kpis
    ]
    print_table(f"EU data-centre report {reports[0].year}: key performance indicators",
                ["KPI", "Unit", *sites], rows)  # fmt: skip
    scope = {True: "yes", False: "no", None: "unknown"}
    counts = [
        (r.site, scope[r.in_scope], "valid" if r.valid else f"{len(r.errors)} error(s)",
         *(str(sum(e.status is s for e in r.entries)) for s in eed.Status), str(len(r.owed)))
        for r in reports
    ]  # fmt: skip
    print_table("Indicators", ["Site", "In scope", "Validation",
                               *(s.value.capitalize() for s in eed.Status), "Owed"], counts,
                "Owed: required indicators missing or only estimated (named on standard error). "
                "The whole document: --json, or --format csv")  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add the server-side commands to the `fabriek` command."""
    app.command()(serve)
    app.add_typer(db_app, name="db")
    app.add_typer(demo_app, name="demo")
    app.add_typer(report_app, name="report")
