"""How long a `fabriek` command takes from spawn to exit, as a user at a terminal waits.

1. Migrate a fresh SQLite database, load the demo factory and serve it (`fabriek serve`);
2. time `fabriek --help` and `fabriek jobs` (signed in as the demo member maria, against
   that server), `--runs` times each after one unmeasured run: wall time spawn to exit, and
   the CPU time the command used (user + system: steadier than wall time on a busy machine);
3. run each once more under `python -X importtime` and list the imports that cost most.

For reference it also times a bare `python -c pass`: the interpreter's own start. With
`--client-src OTHER/src` it times that checkout's client and this one's in turn, run by run,
both as `python -m fabriek.main` against the same server: before and after in one run.

    .venv/bin/python -m bench.cli_startup --runs 10
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

from tests.servers import prepare, throwaway_database

from bench.api_load import command_line, machine_description, served
from fabriek.services.demo.seed import demo_token

# The console script a user runs; `-m fabriek.main` where it is not installed.
_SCRIPT = Path(sys.executable).with_name("fabriek")
FABRIEK = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "fabriek.main"]
_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")


@dataclass
class Timing:
    label: str
    wall_s: list[float]
    cpu_s: list[float]


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run to completion (it must succeed): wall seconds and CPU seconds (user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited with {done.returncode}: {done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def measure(label: str, args: list[str], env: dict[str, str], runs: int) -> Timing:
    timed(args, env)  # warm: bytecode compiled, files in the page cache
    samples = [timed(args, env) for _ in range(runs)]
    return Timing(label, [w for w, _ in samples], [c for _, c in samples])


def measure_pair(
    label: str, args: list[str], before_env: dict[str, str], env: dict[str, str], runs: int
) -> list[Timing]:
    """The other checkout's client and this one's, run by run in turn (each warmed first),
    so that a busy machine's noise falls on both alike."""
    timed(args, before_env)
    timed(args, env)
    pairs = [(timed(args, before_env), timed(args, env)) for _ in range(runs)]
    return [
        Timing(f"{label} (--client-src)", [b[0] for b, _ in pairs], [b[1] for b, _ in pairs]),
        Timing(label, [a[0] for _, a in pairs], [a[1] for _, a in pairs]),
    ]


def import_offenders(args: list[str], env: dict[str, str], top: int) -> list[tuple[str, float]]:
    """The imports of one `fabriek ARGS` by cumulative time (ms), most expensive first."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "fabriek.main", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    costs: list[tuple[str, float]] = []
    for line in done.stderr.splitlines():
        found = _IMPORT_LINE.match(line)
        # Two spaces of indent or fewer: a module the command itself (or fabriek) pulled in,
        # not the inner modules of a library.
        if found and len(found.group(3)) <= 3:
            costs.append((found.group(4), int(found.group(2)) / 1000))
    return sorted(costs, key=lambda c: -c[1])[:top]


def report(timings: list[Timing], offenders: dict[str, list[tuple[str, float]]]) -> str:
    lines = [
        "| command | wall median ms | wall min ms | wall max ms | CPU median ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for t in timings:
        lines.append(
            f"| `{t.label}` | {statistics.median(t.wall_s) * 1000:.0f} "
            f"| {min(t.wall_s) * 1000:.0f} | {max(t.wall_s) * 1000:.0f} "
            f"| {statistics.median(t.cpu_s) * 1000:.0f} |"
        )
    for label, costs in offenders.items():
        lines += ["", f"Imports of `{label}` by cumulative time (python -X importtime):", ""]
        lines += [f"    {ms:7.1f} ms  {name}" for name, ms in costs]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="measured runs per command")
    parser.add_argument("--top", type=int, default=12, help="imports to list per command")
    parser.add_argument(
        "--client-src",
        type=Path,
        help="also time the fabriek of this src/ folder (an older checkout) against the same "
        "server, before this one's",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        with throwaway_database("sqlite", tmp) as url:
            prepare(url)
            with served(url, tmp) as (base_url, _proc):
                env = {
                    **os.environ,
                    "FABRIEK_URL": base_url,
                    "FABRIEK_TOKEN": demo_token("maria").token,
                    "FABRIEK_CONFIG_DIR": str(tmp / "config"),
                    "COLUMNS": "120",
                }
                commands = {"fabriek --help": ["--help"], "fabriek jobs": ["jobs"]}
                timings = [measure("python -c pass", [sys.executable, "-c", "pass"], env, 3)]
                for label, command in commands.items():
                    if args.client_src:
                        # The same launcher for both: only the source folder differs.
                        argv = [sys.executable, "-m", "fabriek.main", *command]
                        other = {**env, "PYTHONPATH": str(args.client_src.resolve())}
                        timings += measure_pair(label, argv, other, env, args.runs)
                    else:
                        timings.append(measure(label, [*FABRIEK, *command], env, args.runs))
                offenders = {k: import_offenders(v, env, args.top) for k, v in commands.items()}
    print("\n".join(machine_description()))
    print(f"Command: {command_line()}")
    print(f"Runs: {args.runs} per command, after one unmeasured run\n")
    print(report(timings, offenders))


if __name__ == "__main__":
    main()
