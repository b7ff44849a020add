"""What a partner factory's submission costs over an ordinary one, at the partner.

1. Migrate a fresh SQLite database, load the demo factory, grant a partner ("factory-a") an
   allocation and an account, and serve it (`fabriek serve`) with a partners file trusting
   the partner's Ed25519 key;
2. submit `--jobs` jobs each way, alternating one by one so the machine's other load falls
   on both alike: through `POST /api/v1/partner/jobs` as the partner (each with a freshly
   signed assertion, as the partner engine sends it) and through `POST /api/v1/jobs` as
   the demo member maria. Jobs start tomorrow (`earliest_start`), so only submission is
   timed; wall time per request, client side, including signing;
3. time signing and verifying one assertion alone (`--crypto-runs` times).

    .venv/bin/python -m bench.partner_submit --jobs 200
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from joserfc import jwt
from joserfc.jwk import OKPKey
from tests.servers import free_port, prepare, throwaway_database
from tests.test_partner_factories import PARTNER_ACCOUNT, PARTNER_PROJECT, grant_allocation

from bench.api_load import command_line, machine_description, wait_ready
from fabriek.domain.partners import (
    ASSERTION_ALG,
    ASSERTION_HEADER,
    Assertion,
    assertion_for,
    assertion_refusal,
)
from fabriek.services.demo.seed import demo_token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--crypto-runs", type=int, default=2000)
    args = parser.parse_args()
    key = OKPKey.generate_key("Ed25519")
    public = OKPKey.import_key(key.as_pem(private=False))
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    partner_ms: list[float] = []
    plain_ms: list[float] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with throwaway_database("sqlite", tmp) as url:
            prepare(url)
            token = grant_allocation(url, datetime.now(UTC))
            (tmp / "partners.toml").write_text(
                f'factory = "factory-b"\n\n[partners.factory-a]\naccount = "{PARTNER_ACCOUNT}"\n'
                f'public_key = """\n{key.as_pem(private=False).decode()}"""\n'
            )
            port = free_port()
            env = {**os.environ, "FABRIEK_DATABASE_URL": url,
                   "FABRIEK_STATE_DIR": str(tmp / "state"),
                   "FABRIEK_PARTNERS_FILE": str(tmp / "partners.toml")}  # fmt: skip
            base = f"http://127.0.0.1:{port}"
            proc = subprocess.Popen(
                [sys.executable, "-m", "fabriek.main", "serve", "--port", str(port)],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            wait_ready(base, proc, timeout_s=300)
            try:
                with (
                    httpx.Client(base_url=base, timeout=60,
                                 headers={"Authorization": f"Bearer {token}"}) as partner,
                    httpx.Client(base_url=base, timeout=60, headers={
                        "Authorization": f"Bearer {demo_token('maria').token}"}) as plain,
                ):  # fmt: skip
                    for i in range(args.jobs + 10):  # the first 10 of each warm up
                        body = json.dumps({"project": PARTNER_PROJECT, "command": ["true"],
                                           "earliest_start": tomorrow}).encode()  # fmt: skip
                        began = time.perf_counter()
                        claims = assertion_for(
                            "factory-a", "factory-b", "maria", i + 1, body, int(time.time())
                        ).claims()
                        signed = jwt.encode(
                            {"alg": ASSERTION_ALG}, claims, key, algorithms=[ASSERTION_ALG]
                        )
                        answer = partner.post(
                            "/api/v1/partner/jobs", content=body,
                            headers={ASSERTION_HEADER: signed,
                                     "Content-Type": "application/json"},
                        )  # fmt: skip
                        took = (time.perf_counter() - began) * 1000
                        assert answer.status_code == 201, answer.text
                        if i >= 10:
                            partner_ms.append(took)
                        began = time.perf_counter()
                        answer = plain.post(
                            "/api/v1/jobs",
                            json={"project": "dutch-llm", "command": ["true"],
                                  "earliest_start": tomorrow},
                        )  # fmt: skip
                        took = (time.perf_counter() - began) * 1000
                        assert answer.status_code == 201, answer.text
                        if i >= 10:
                            plain_ms.append(took)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
    body = b'{"project": "x", "command": ["true"]}'
    began = time.perf_counter()
    for i in range(args.crypto_runs):
        made = assertion_for("factory-a", "factory-b", "maria", i, body, int(time.time()))
        signed = jwt.encode({"alg": ASSERTION_ALG}, made.claims(), key, algorithms=[ASSERTION_ALG])
    sign_us = (time.perf_counter() - began) / args.crypto_runs * 1e6
    began = time.perf_counter()
    for _ in range(args.crypto_runs):
        back = Assertion.from_claims(jwt.decode(signed, public, algorithms=[ASSERTION_ALG]).claims)
        assert assertion_refusal(
            back, issuer="factory-a", audience="factory-b", body=body, now_s=int(time.time())
        ) is None  # fmt: skip
    verify_us = (time.perf_counter() - began) / args.crypto_runs * 1e6

    def row(label: str, ms: list[float]) -> str:
        q = statistics.quantiles(ms, n=100)
        return f"| {label} | {statistics.median(ms):.1f} | {q[94]:.1f} | {max(ms):.1f} |"

    print(f"command: {command_line()}")
    for line in machine_description():
        print(line)
    print(f"\n{args.jobs} submissions each way, alternating, SQLite, one server process\n")
    print("| route | median ms | p95 ms | max ms |\n|---|---|---|---|")
    print(row("POST /api/v1/partner/jobs (signed, verified)", partner_ms))
    print(row("POST /api/v1/jobs", plain_ms))
    ratio = statistics.median(partner_ms) / statistics.median(plain_ms)
    print(f"\nmedian ratio partner / plain: {ratio:.2f}")
    print(f"sign one assertion: {sign_us:.0f} µs; verify and check one: {verify_us:.0f} µs")


if __name__ == "__main__":
    main()
