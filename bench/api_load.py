"""A load generator for the Fabriek API, and a benchmark of GET /api/v1/projects built on it.

Reuse it for any endpoint::

    from bench.api_load import run_load
    result = run_load("http://127.0.0.1:8000", token, "POST", "/api/v1/jobs",
                      lambda i: {"name": f"bench-{i}", ...}, concurrency=32, duration_s=10)
    print(result.rps, result.p50_ms, result.p99_ms, result.errors)

`concurrency` clients (asyncio tasks, each with its own kept-alive connection, spoken with a
minimal hand-written HTTP/1.1 client: see `_Connection`) send requests back to back, with no
think time: a closed loop. Each request gets the
body `json_factory(i)`, `i` counting from 0 across all clients (and worker processes).
Requests that start in the warm-up are not counted; the measured window is `duration_s`.
`processes > 1` splits the clients over that many forked client processes, for when one
Python client process is the bottleneck.

As a command it serves its own Fabriek (`python -m fabriek.main serve`, one uvicorn process,
exactly as `fabriek serve` runs) on a fresh migrated demo database per backend:

    .venv/bin/python -m bench.api_load --backend both --concurrency 1,32 --duration 10

Client and server share the machine: the table shows how much CPU each used, so a figure
limited by the client (or by a 2-core machine) is visible as such.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy.engine import make_url
from tests.servers import free_port, prepare, throwaway_database

from fabriek.services.demo import seed

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
BACKENDS = ("sqlite", "postgresql")

JsonFactory = Callable[[int], Any]
# CPU at the start of the window: server process, PostgreSQL backends, machine (busy, total).
Sample = tuple[float | None, dict[int, float] | None, tuple[int, int]]


# --- Results -------------------------------------------------------------------------------


@dataclass
class LoadResult:
    """What one load run measured. Latencies are of the requests started in the window."""

    method: str
    path: str
    concurrency: int
    processes: int
    duration_s: float  # the measured window: from the end of warm-up to the last completion
    requests: int  # completed in the window (errors included)
    errors: int  # transport failures and answers with status >= 400
    latencies_ms: list[float] = field(repr=False)
    statuses: dict[int, int]  # status -> count; 0 for a transport failure
    error_samples: list[str]  # the first few error descriptions
    client_cpu_s: float  # CPU the client process(es) used in the window
    server_cpu_s: float | None  # CPU of the server process in the window, when its pid is known
    db_cpu_s: float | None  # CPU of the PostgreSQL backends of `database`, when given
    machine_busy: float  # share of all CPUs busy in the window (0..1), from /proc/stat

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        """The q-th percentile (0..100) of latency, nearest-rank; NaN without requests."""
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
        return ordered[rank - 1]

    @property
    def p50_ms(self) -> float:
        return self.percentile_ms(50)

    @property
    def p99_ms(self) -> float:
        return self.percentile_ms(99)

    @property
    def client_cpu_share(self) -> float:
        """Client CPU as a share of one core (1.0 = one core fully busy)."""
        return self.client_cpu_s / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def server_cpu_share(self) -> float | None:
        if self.server_cpu_s is None or self.duration_s <= 0:
            return None
        return self.server_cpu_s / self.duration_s

    @property
    def client_ms_per_request(self) -> float:
        """Client CPU per request: what the load generator itself costs."""
        return self.client_cpu_s / self.requests * 1000 if self.requests else 0.0

    @property
    def server_ms_per_request(self) -> float | None:
        """Server CPU per request answered: its cost, independent of how busy it was."""
        if self.server_cpu_s is None or self.requests == 0:
            return None
        return self.server_cpu_s / self.requests * 1000

    @property
    def db_cpu_share(self) -> float | None:
        if self.db_cpu_s is None or self.duration_s <= 0:
            return None
        return self.db_cpu_s / self.duration_s

    @property
    def other_cpu_share(self) -> float:
        """CPU (in cores) used by everything else on the machine in the window: noise."""
        ours = self.client_cpu_share + (self.server_cpu_share or 0) + (self.db_cpu_share or 0)
        return max(0.0, self.machine_busy * (os.cpu_count() or 1) - ours)


@dataclass
class _WorkerOutcome:
    latencies_ms: list[float]
    statuses: dict[int, int]
    error_samples: list[str]
    last_done: float  # time.time() of the last completion counted
    cpu_s: float  # CPU this worker process used between the start and end of the window


# --- CPU accounting ------------------------------------------------------------------------

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process (all its threads), or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the ")" the fields start at state (field 3); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def machine_cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return total - idle, total


def postgres_backends_cpu_s(database: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend process serving this database, by pid.

    Found by their process titles ("postgres: ... <user> <database> <client> ..."), so it
    works for a local server whose processes this user may read (root, or user postgres).
    """
    found: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("postgres:") and f" {database} " in title:
            cpu = process_cpu_s(int(entry.name))
            if cpu is not None:
                found[int(entry.name)] = cpu
    return found


def wait_for_quiet(max_busy: float = 0.2, settle_s: float = 1.0, timeout_s: float = 20.0) -> float:
    """Wait until the machine's CPUs are at most `max_busy` busy for `settle_s`; the last
    share measured (which is above `max_busy` if it gave up after `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    while True:
        busy_from, total_from = machine_cpu_ticks()
        time.sleep(settle_s)
        busy_to, total_to = machine_cpu_ticks()
        share = (busy_to - busy_from) / max(1, total_to - total_from)
        if share <= max_busy or time.monotonic() > deadline:
            return share


# --- The load loop -------------------------------------------------------------------------


class _Connection:
    """One kept-alive HTTP/1.1 connection, spoken by hand over asyncio streams.

    A load generator that shares the machine with the server must cost little: httpx took
    about 2.5 ms of CPU per request here, this about a tenth of that. It sends exactly
    what a client library would (request line, Host, the given headers, Content-Length,
    body) and reads the status, the headers and a Content-Length or chunked body.
    """

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parsed = urlsplit(url)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 80
        fixed = {"Host": f"{self.host}:{self.port}", "Accept": "*/*", **headers}
        self.head = "".join(f"{k}: {v}\r\n" for k, v in fixed.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = f"{method} {path} HTTP/1.1\r\n{self.head}"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + (body or b""))
        try:
            status_line = await self.reader.readuntil(b"\r\n")
            raw = await self.reader.readuntil(b"\r\n\r\n")
            status = int(status_line.split(b" ", 2)[1])
            length, chunked, close = 0, False, False
            for line in raw.split(b"\r\n"):
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
                elif name == b"connection":
                    close = b"close" in value.lower()
            if chunked:
                parts = []
                while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                    parts.append(await self.reader.readexactly(size + 2))
                await self.reader.readuntil(b"\r\n")
                content = b"".join(p[:-2] for p in parts)
            else:
                content = await self.reader.readexactly(length)
        except BaseException:
            await self.close()
            raise
        if close:
            await self.close()
        return status, content

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


async def _client_loop(
    client: _Connection,
    method: str,
    path: str,
    json_factory: JsonFactory | None,
    next_index: Callable[[], int],
    measure_from: float,
    stop_at: float,
    out: _WorkerOutcome,
) -> None:
    while True:
        started = time.time()
        if started >= stop_at:
            return
        body = json_factory(next_index()) if json_factory is not None else None
        status = 0
        problem = ""
        try:
            status, content = await client.request(
                method, path, json.dumps(body).encode() if body is not None else None
            )
            if status >= 400:
                problem = f"{status} {content[:200].decode(errors='replace')}"
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        done = time.time()
        if started < measure_from:
            continue
        out.latencies_ms.append((done - started) * 1000)
        out.statuses[status] = out.statuses.get(status, 0) + 1
        if problem and len(out.error_samples) < 5:
            out.error_samples.append(problem)
        out.last_done = max(out.last_done, done)


async def _run_clients(
    url: str,
    token: str | None,
    method: str,
    path: str,
    json_factory: JsonFactory | None,
    clients: int,
    first_index: int,
    index_step: int,
    measure_from: float,
    stop_at: float,
) -> _WorkerOutcome:
    out = _WorkerOutcome([], {}, [], measure_from, 0.0)
    counter = 0

    def next_index() -> int:
        nonlocal counter
        i = first_index + counter * index_step
        counter += 1
        return i

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    # One connection per simulated client, each used by one closed loop.
    pool = [_Connection(url, headers) for _ in range(clients)]
    tasks = [
        asyncio.create_task(
            _client_loop(client, method, path, json_factory, next_index, measure_from, stop_at, out)
        )
        for client in pool
    ]
    # CPU is counted for the measured window only, not for the warm-up.
    await asyncio.sleep(max(0.0, measure_from - time.time()))
    cpu_from = time.process_time()
    try:
        await asyncio.gather(*tasks)
    finally:
        out.cpu_s = time.process_time() - cpu_from
        for client in pool:
            await client.close()
    return out


def _worker_main(
    queue: Queue[_WorkerOutcome],
    url: str,
    token: str | None,
    method: str,
    path: str,
    json_factory: JsonFactory | None,
    clients: int,
    first_index: int,
    index_step: int,
    measure_from: float,
    stop_at: float,
) -> None:
    queue.put(
        asyncio.run(
            _run_clients(
                url,
                token,
                method,
                path,
                json_factory,
                clients,
                first_index,
                index_step,
                measure_from,
                stop_at,
            )
        )
    )


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def run_load(
    url: str,
    token: str | None,
    method: str,
    path: str,
    json_factory: JsonFactory | None = None,
    concurrency: int = 1,
    duration_s: float = 10.0,
    warmup_s: float = 1.0,
    processes: int = 1,
    server_pid: int | None = None,
    database: str | None = None,
) -> LoadResult:
    """Send `method path` from `concurrency` closed-loop clients for warm-up + duration.

    `json_factory(i)` is the JSON body of request `i` (None: no body); `i` starts at 0 in every
    call, so put a per-run prefix into names that must be unique. With `processes > 1`
    the clients are split over that many forked processes (the factory needs no pickling).
    `server_pid` adds the server's CPU use to the result, `database` that of the PostgreSQL
    backends serving that database (local server only).
    """
    if concurrency < 1 or processes < 1:
        raise ValueError("concurrency and processes must be at least 1")
    processes = min(processes, concurrency)
    start = time.time() + (0.3 if processes > 1 else 0.0)  # forked workers start together
    measure_from = start + warmup_s
    stop_at = measure_from + duration_s

    def at_window_start() -> Sample:
        time.sleep(max(0.0, measure_from - time.time()))
        return (
            process_cpu_s(server_pid) if server_pid else None,
            postgres_backends_cpu_s(database) if database else None,
            machine_cpu_ticks(),
        )

    if processes == 1:
        # Sample the server and the machine at the window's start from a helper thread.
        async def single() -> tuple[_WorkerOutcome, Sample]:
            loop = asyncio.get_running_loop()
            sampled = loop.run_in_executor(None, at_window_start)
            outcome = await _run_clients(
                url, token, method, path, json_factory, concurrency, 0, 1, measure_from, stop_at
            )
            return outcome, await sampled

        outcome, (server_from, db_from, ticks_from) = asyncio.run(single())
        outcomes = [outcome]
    else:
        ctx = multiprocessing.get_context("fork")
        queue: Queue[_WorkerOutcome] = ctx.Queue()
        workers = [
            ctx.Process(
                target=_worker_main,
                args=(
                    queue,
                    url,
                    token,
                    method,
                    path,
                    json_factory,
                    clients,
                    w,
                    processes,
                    measure_from,
                    stop_at,
                ),
                daemon=True,
            )
            for w, clients in enumerate(_split(concurrency, processes))
        ]
        for w in workers:
            w.start()
        server_from, db_from, ticks_from = at_window_start()
        outcomes = [queue.get(timeout=duration_s + warmup_s + 120) for _ in workers]
        for w in workers:
            w.join(timeout=10)

    server_to = process_cpu_s(server_pid) if server_pid else None
    db_to = postgres_backends_cpu_s(database) if database else None
    busy_to, total_to = machine_cpu_ticks()
    window_end = max(stop_at, *(o.last_done for o in outcomes))
    statuses: dict[int, int] = {}
    for o in outcomes:
        for status, count in o.statuses.items():
            statuses[status] = statuses.get(status, 0) + count
    requests = sum(statuses.values())
    errors = sum(c for s, c in statuses.items() if s == 0 or s >= 400)
    total_ticks = total_to - ticks_from[1]
    return LoadResult(
        method=method,
        path=path,
        concurrency=concurrency,
        processes=processes,
        duration_s=window_end - measure_from,
        requests=requests,
        errors=errors,
        latencies_ms=[ms for o in outcomes for ms in o.latencies_ms],
        statuses=statuses,
        error_samples=[s for o in outcomes for s in o.error_samples][:5],
        client_cpu_s=sum(o.cpu_s for o in outcomes),
        server_cpu_s=(
            server_to - server_from if server_to is not None and server_from is not None else None
        ),
        db_cpu_s=(
            sum(cpu - (db_from or {}).get(pid, 0.0) for pid, cpu in db_to.items())
            if db_to is not None
            else None
        ),
        machine_busy=(busy_to - ticks_from[0]) / total_ticks if total_ticks > 0 else 0.0,
    )


# --- Servers (shared with bench.serve_startup); databases come from tests.servers --------


def server_env(database_url: str, port: int, state_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        FABRIEK_DATABASE_URL=database_url,
        FABRIEK_PORT=str(port),
        FABRIEK_STATE_DIR=str(state_dir),
        PYTHONUNBUFFERED="1",
    )
    return env


SERVE = [sys.executable, "-m", "fabriek.main", "serve"]


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (uvicorn's graceful shutdown), then SIGKILL after 15 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_ready(base_url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> float:
    """Poll GET /readyz every 10 ms until it answers 200; the time.perf_counter() of that."""
    deadline = time.perf_counter() + timeout_s
    with httpx.Client(base_url=base_url, timeout=5.0) as client:
        while True:
            try:
                if client.get("/readyz").status_code == 200:
                    return time.perf_counter()
            except httpx.TransportError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode} before it was ready")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"the server was not ready within {timeout_s} s")
            time.sleep(0.010)


@contextmanager
def served(database_url: str, tmp: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`python -m fabriek.main serve` on this (prepared) database: (base URL, process)."""
    port = free_port()
    log = tmp / f"serve-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            SERVE,
            env=server_env(database_url, port, tmp / f"state-{port}"),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_ready(base_url, proc)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}; its output:\n{log.read_text()}") from None
        yield base_url, proc
    finally:
        stop_server(proc)


# --- Reporting -----------------------------------------------------------------------------


def machine_description() -> list[str]:
    """nproc, CPU model, memory, Python, OS: lines for a report."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return [
        f"CPUs (nproc): {os.cpu_count()} ({len(os.sched_getaffinity(0))} usable)",
        f"CPU model: {model}",
        f"Memory: {mem_kb / 1024 / 1024:.1f} GiB",
        f"Python: {platform.python_implementation()} {platform.python_version()}",
        f"OS: {platform.platform()}",
    ]


def command_line() -> str:
    """How this run was started, as one could type it from the repository root."""
    prog = Path(sys.argv[0])
    module = f"bench.{prog.stem}" if prog.parent.name == "bench" else str(prog)
    return shlex.join([".venv/bin/python", "-m", module, *sys.argv[1:]])


def _pct(share: float | None) -> str:
    return "n/a" if share is None else f"{share * 100:.0f}%"


def table(rows: list[tuple[str, LoadResult]]) -> str:
    lines = [
        "| backend | concurrency | req/s | p50 ms | p99 ms | errors | requests "
        "| client CPU | server CPU | db CPU | other CPU | client CPU ms/req "
        "| server CPU ms/req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for backend, r in rows:
        lines.append(
            f"| {backend} | {r.concurrency} | {r.rps:.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} "
            f"| {r.errors} | {r.requests} | {_pct(r.client_cpu_share)} "
            f"| {_pct(r.server_cpu_share)} | {_pct(r.db_cpu_share)} "
            f"| {_pct(r.other_cpu_share)} | {r.client_ms_per_request:.1f} "
            f"| {'n/a' if r.server_ms_per_request is None else f'{r.server_ms_per_request:.1f}'} |"
        )
    return "\n".join(lines)


# --- Command -------------------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.api_load",
        description="GET /api/v1/projects (or --path) under load, on a server of its own.",
    )
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    parser.add_argument(
        "--concurrency", default="1,32", help="comma-separated client counts (default 1,32)"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    parser.add_argument(
        "--processes", type=int, default=1, help="client processes (default 1: one asyncio loop)"
    )
    parser.add_argument("--path", default="/api/v1/projects")
    parser.add_argument("--user", default="admin", help="demo user whose token to send")
    parser.add_argument(
        "--url", default=None, help="load this running server instead of starting one"
    )
    parser.add_argument(
        "--quiet",
        type=float,
        default=0.25,
        help="before each run wait (at most 20 s) until the CPUs are at most this busy",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    concurrencies = [int(c) for c in args.concurrency.split(",") if c.strip()]
    token = seed.demo_token(args.user).token
    print(f"Command: `{command_line()}`")
    print("Machine: " + "; ".join(machine_description()))
    print(
        f"Load: GET {args.path} as {args.user}, {args.warmup:g} s warm-up + "
        f"{args.duration:g} s measured, {args.processes} client process(es), "
        "server and client on the same machine."
    )
    rows: list[tuple[str, LoadResult]] = []

    def run_all(label: str, url: str, pid: int | None, database: str | None) -> None:
        for c in concurrencies:
            busy = wait_for_quiet(args.quiet)
            if busy > args.quiet:
                print(f"  the machine stayed {busy:.0%} busy; measuring anyway", file=sys.stderr)
            result = run_load(
                url,
                token,
                "GET",
                args.path,
                None,
                concurrency=c,
                duration_s=args.duration,
                warmup_s=args.warmup,
                processes=args.processes,
                server_pid=pid,
                database=database,
            )
            rows.append((label, result))
            print(
                f"  {label} c={c}: {result.rps:.0f} req/s, p50 {result.p50_ms:.1f} ms, "
                f"p99 {result.p99_ms:.1f} ms, errors {result.errors}",
                file=sys.stderr,
            )
            for sample in result.error_samples:
                print(f"    error: {sample}", file=sys.stderr)

    if args.url:
        run_all("given", args.url.rstrip("/"), None, None)
    else:
        backends = BACKENDS if args.backend == "both" else (args.backend,)
        with tempfile.TemporaryDirectory(prefix="fabriek-bench-") as name:
            tmp = Path(name)
            for backend in backends:
                with throwaway_database(backend, tmp) as db_url:
                    prepare(db_url)
                    database = make_url(db_url).database if backend == "postgresql" else None
                    with served(db_url, tmp) as (url, proc):
                        run_all(backend, url, proc.pid, database)
    print()
    print(table(rows))
    print()
    print(
        "CPU columns: share of one core used in the measured window by the load generator "
        "(client), the `fabriek serve` process (server), its PostgreSQL backends (db) and "
        f"everything else on the machine (other: noise); {os.cpu_count()} cores in all. "
        "CPU ms/req: CPU time per request answered, of the client and of the server process."
    )


if __name__ == "__main__":
    main()
