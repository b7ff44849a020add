"""The CPU model server called directly: small non-streamed requests per second, their
latency, the server's CPU per request, and the time to the first streamed token.

    .venv/bin/python -m bench.model_server --duration 10

It builds the tests' tiny model (tests/model_fixtures.py, nothing downloaded), serves it
with `python -m fabriek.model_server` exactly as an endpoint's replica does, and drives
`POST /v1/chat/completions` with bench/api_load.py's closed-loop clients. Client and server
share the machine: the server's CPU per request shows what it would do with a core of its
own (1000 / that figure is its ceiling in requests per second).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import httpx
from tests.model_fixtures import model_server, tiny_model

from bench.api_load import machine_description, run_load


def first_token_ms(base_url: str, secret: str, runs: int) -> list[float]:
    """Milliseconds from sending a streamed chat request to its first content chunk."""
    out = []
    body = {
        "model": "tiny",
        "messages": [{"role": "user", "content": "Hello there"}],
        "max_tokens": 32,
        "stream": True,
    }
    headers = {"authorization": f"Bearer {secret}"}
    with httpx.Client(trust_env=False, timeout=30) as http:
        for _ in range(runs):
            start = time.perf_counter()
            with http.stream(
                "POST", f"{base_url}/v1/chat/completions", json=body, headers=headers
            ) as r:
                lines = r.iter_lines()
                for line in lines:
                    if '"content": "' in line and '"content": ""' not in line:
                        out.append((time.perf_counter() - start) * 1000)
                        break
                for _ in lines:  # read the answer to its end
                    pass
    return out


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(prog="python -m bench.model_server")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", default="8,32")
    parser.add_argument("--max-tokens", default="1,4")
    args = parser.parse_args(argv)
    print("$ " + " ".join([sys.executable, "-m", "bench.model_server", *(argv or sys.argv[1:])]))
    for line in machine_description():
        print(line)
    with model_server(tiny_model()) as server:
        print("| max_tokens | clients | req/s | p50 ms | p99 ms | server CPU ms/req | busy |")
        print("|---|---|---|---|---|---|---|")
        for max_tokens in (int(x) for x in args.max_tokens.split(",")):
            for clients in (int(x) for x in args.concurrency.split(",")):

                def body(i: int, n: int = max_tokens) -> dict[str, object]:
                    return {
                        "model": "tiny",
                        "messages": [{"role": "user", "content": f"Hello there {i % 10}"}],
                        "max_tokens": n,
                    }

                r = run_load(
                    server.base_url, server.secret, "POST", "/v1/chat/completions", body,
                    concurrency=clients, duration_s=args.duration,
                    server_pid=server.process.pid,
                )  # fmt: skip
                cpu = (r.server_cpu_s or 0) * 1000 / max(r.requests, 1)
                print(
                    f"| {max_tokens} | {clients} | {r.rps:.0f} | {r.percentile_ms(50):.2f} | "
                    f"{r.percentile_ms(99):.2f} | {cpu:.2f} | {r.machine_busy:.0%} |"
                    + (f" errors {r.errors}" if r.errors else "")
                )
        ttft = first_token_ms(server.base_url, server.secret, 50)
        print(
            f"time to first token (streamed chat, 50 runs): median {statistics.median(ttft):.2f} ms,"
            f" p90 {statistics.quantiles(ttft, n=10)[-1]:.2f} ms"
        )


if __name__ == "__main__":
    main()
