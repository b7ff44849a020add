"""Job submission through the HTTP API: throughput and latency at several client counts.

    .venv/bin/python -m bench.submit_load --backend both --concurrency 1,16,64 --duration 10

Each request is a `POST /api/v1/jobs` of a one-GPU command job with an earliest start far in
the future, so it is checked against every site, written (job and event) and queued, but
never started: what is measured is the API and the store, not the machine running jobs.
Server: one `fabriek serve` process (uvicorn, dispatcher inside), on a fresh demo database.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

from tests.servers import prepare, throwaway_database

from bench.api_load import command_line, machine_description, run_load, served
from fabriek.services.demo.seed import demo_token


def body(i: int) -> dict[str, Any]:
    return {
        "project": "dutch-llm",
        "name": f"bench-{i}",
        "command": ["python", "train.py", f"--seed={i}"],
        "gpus": 1,
        "gpu_type": "h100",
        "time_limit": "1h",
        "earliest_start": "2099-01-01T00:00:00Z",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    levels = [int(c) for c in args.concurrency.split(",")]
    token = demo_token("maria").token
    # With several API processes the served pid is only their parent: its CPU says nothing.
    several = int(os.environ.get("FABRIEK_WORKERS", "1")) > 1
    rows = []
    for backend in backends:
        with tempfile.TemporaryDirectory() as tmp, throwaway_database(backend, Path(tmp)) as url:
            prepare(url)
            with served(url, Path(tmp)) as (base, proc):
                for n in levels:
                    result = run_load(
                        base, token, "POST", "/api/v1/jobs", body, concurrency=n,
                        duration_s=args.duration, processes=min(args.processes, n),
                        server_pid=proc.pid if not several else None,
                        database=url.rsplit("/", 1)[1] if backend == "postgresql" else None,
                    )  # fmt: skip
                    rows.append((backend, n, result))
    print("\n".join(machine_description()))
    print(f"Command: {command_line()}\n")
    print(
        "| store | clients | submissions/s | p50 ms | p99 ms | errors "
        "| CPU ms/request: server | database | client | machine busy |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for backend, n, r in rows:
        server = "n/a" if r.server_ms_per_request is None else f"{r.server_ms_per_request:.2f}"
        db = (
            "n/a"
            if r.db_cpu_s is None or not r.requests
            else f"{r.db_cpu_s / r.requests * 1000:.2f}"
        )
        print(f"| {backend} | {n} | {r.rps:.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.errors} "
              f"| {server} | {db} | {r.client_ms_per_request:.2f} | {r.machine_busy:.0%} |")  # fmt: skip
    print(
        "\nServer CPU: the `fabriek serve` process (with FABRIEK_WORKERS > 1 only the parent, "
        "so n/a); database: the PostgreSQL backends of the test database; client: the load "
        "generator's processes; machine busy: share of all CPUs busy in the window."
    )


if __name__ == "__main__":
    main()
