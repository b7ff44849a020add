"""How long `fabriek serve` takes from spawn to ready, and how long a fresh factory takes to set up.

For each backend (a fresh SQLite file, a fresh PostgreSQL database):

1. `python -m fabriek.main db upgrade` on the empty database, then `demo load`: once each,
   timed from spawn to exit (Python start-up and imports included, as a user sees it);
2. `python -m fabriek.main serve` on that migrated demo database, `--runs` times: from spawn
   to the first 200 from GET /readyz, polled every 10 ms; the median, min and max.

For reference it also times a bare `python -c pass` and `python -c "import fabriek.main"`:
what of the start-up is the interpreter and the imports.

    .venv/bin/python -m bench.serve_startup --backend both --runs 5
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.servers import free_port, throwaway_database

from bench.api_load import (
    BACKENDS,
    SERVE,
    command_line,
    machine_cpu_ticks,
    machine_description,
    server_env,
    stop_server,
    wait_for_quiet,
    wait_ready,
)

FABRIEK = [sys.executable, "-m", "fabriek.main"]
_READY_LINE = re.compile(r"Ready to start after ([0-9.]+) s")


@dataclass
class StartupResult:
    backend: str
    upgrade_s: float  # `db upgrade` on an empty database, spawn to exit
    demo_load_s: float  # `demo load` right after, spawn to exit
    ready_s: list[float]  # `serve`, spawn to the first 200 from /readyz, one per run
    built_s: list[float]  # what `serve` itself reports: its start to just before uvicorn runs


def timed_command(args: list[str], env: dict[str, str]) -> float:
    """Run a command to completion; its wall time from spawn to exit, in seconds."""
    started = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return elapsed


def serve_until_ready(database_url: str, tmp: Path) -> tuple[float, float | None]:
    """Spawn `serve`; (seconds from spawn to the first 200 from /readyz, its own start-up
    figure when it printed one)."""
    port = free_port()
    log = tmp / f"serve-{port}.log"
    with log.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            SERVE,
            env=server_env(database_url, port, tmp / "state"),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        ready = wait_ready(f"http://127.0.0.1:{port}", proc) - started
    except RuntimeError as exc:
        stop_server(proc)
        raise RuntimeError(f"{exc}; its output:\n{log.read_text()}") from None
    stop_server(proc)
    found = _READY_LINE.search(log.read_text())
    return ready, float(found.group(1)) if found else None


def measure(backend: str, runs: int, tmp: Path) -> StartupResult:
    with throwaway_database(backend, tmp) as url:
        env = server_env(url, free_port(), tmp / "state")
        upgrade_s = timed_command([*FABRIEK, "db", "upgrade"], env)
        demo_s = timed_command([*FABRIEK, "demo", "load"], env)
        ready: list[float] = []
        built: list[float] = []
        for _ in range(runs):
            wait_for_quiet(0.25, 0.5, 10.0)
            total, own = serve_until_ready(url, tmp)
            ready.append(total)
            if own is not None:
                built.append(own)
    return StartupResult(backend, upgrade_s, demo_s, ready, built)


def interpreter_baseline(runs: int = 3) -> tuple[float, float]:
    """Medians of `python -c pass` and `python -c "import fabriek.main"`, in seconds."""
    env = server_env("sqlite://", free_port(), Path(tempfile.gettempdir()))
    bare = [timed_command([sys.executable, "-c", "pass"], env) for _ in range(runs)]
    imports = [
        timed_command([sys.executable, "-c", "import fabriek.main"], env) for _ in range(runs)
    ]
    return statistics.median(bare), statistics.median(imports)


def table(results: list[StartupResult]) -> str:
    lines = [
        "| backend | serve to ready: median | min | max | runs | serve's own start-up "
        "| db upgrade (empty db) | demo load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        own = f"{statistics.median(r.built_s):.2f} s" if r.built_s else "n/a"
        lines.append(
            f"| {r.backend} | {statistics.median(r.ready_s):.2f} s | {min(r.ready_s):.2f} s "
            f"| {max(r.ready_s):.2f} s | {len(r.ready_s)} | {own} "
            f"| {r.upgrade_s:.2f} s | {r.demo_load_s:.2f} s |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.serve_startup",
        description="Cold start of `fabriek serve` to ready, and of setting up a factory.",
    )
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    parser.add_argument("--runs", type=int, default=5, help="serve starts per backend")
    args = parser.parse_args(argv)
    print(f"Command: `{command_line()}`")
    print("Machine: " + "; ".join(machine_description()))
    backends = BACKENDS if args.backend == "both" else (args.backend,)
    results: list[StartupResult] = []
    busy_from, total_from = machine_cpu_ticks()
    wall_from = time.monotonic()
    bare, imports = interpreter_baseline()
    with tempfile.TemporaryDirectory(prefix="fabriek-bench-") as name:
        for backend in backends:
            results.append(measure(backend, args.runs, Path(name)))
            print(
                f"  {backend}: " + ", ".join(f"{s:.2f}" for s in results[-1].ready_s),
                file=sys.stderr,
            )
    busy_to, total_to = machine_cpu_ticks()
    wall = time.monotonic() - wall_from
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    ours = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    machine = (busy_to - busy_from) / max(1, total_to - total_from) * (os.cpu_count() or 1)
    print()
    print(table(results))
    print()
    print(
        f"All times from spawn, as wall-clock seconds. For reference: `python -c pass` "
        f"{bare:.2f} s, `python -c 'import fabriek.main'` {imports:.2f} s (medians of 5). "
        "serve's own start-up is the 'Ready to start after' figure it prints (settings, "
        "app, schema check, demo check), before uvicorn binds its port."
    )
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print(
            "PYTHONDONTWRITEBYTECODE is set: modules without a cached .pyc are compiled at "
            "every start (fabriek's own, in an editable install), which adds to these times."
        )
    print(
        f"CPU over the {wall:.0f} s run, in cores: this benchmark and its commands "
        f"{ours / wall:.2f}, the whole machine {machine:.2f} of {os.cpu_count()} "
        "(the difference is PostgreSQL and anything else running: noise)."
    )


if __name__ == "__main__":
    main()
