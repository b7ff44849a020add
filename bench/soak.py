"""A long day: a real server under steady mixed load, its memory and response times over time.

    .venv/bin/python -m bench.soak --minutes 60 --rate 5 --out soak.json

One `fabriek serve` process (local engine, dispatcher inside) on a fresh, migrated PostgreSQL
demo database, loaded for `--minutes` by a few client threads at `--rate` requests per second
in all, mixed: job submissions (short `echo` jobs that really run), job listings, single jobs,
log reads, log streams (`?follow=true` until the job ends), the public dashboard and the
portal's job list. Every `--sample` seconds it records the server's memory (VmRSS from
/proc, the server alone and its child processes apart: the children are the running jobs),
p50/p95/max response time per kind over the interval, and the answers by status.

Halfway it cuts PostgreSQL's connections to the server's database
(`pg_terminate_backend` on every backend of that database; the PostgreSQL service itself
keeps running): requests in that moment must succeed or get a clean 503, none a 500, and
service must resume by itself. After the load it waits for the jobs to end and checks the
store: every submission answered 2xx is a job that ended, exactly once; no refused
submission was written anyway; each job that ran has exactly one ledger line (charge).

Writes the samples and the checks as JSON to `--out` (the server's log beside it, `.log`),
and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from tests.servers import PG_ADMIN, postgres_unavailable, prepare, throwaway_database

from bench.api_load import command_line, machine_description, served
from fabriek.domain.job_states import TERMINAL_STATES
from fabriek.services.demo.seed import demo_token

PROJECT = "dutch-llm"
USER = "maria"
# Relative weights of the kinds of request in the mix (submissions are 2 in 11 of them).
MIX = {
    "submit": 2,
    "list": 2,
    "job": 1,
    "logs": 2,
    "stream": 1,
    "dashboard": 1,
    "portal": 2,
}
TERMINAL = {s.value for s in TERMINAL_STATES}


@dataclass
class Record:
    at: float  # time.monotonic() when the answer came
    kind: str
    status: int  # 0: no answer (transport error or timeout)
    ms: float


@dataclass
class Shared:
    """What the client threads, the sampler and the checks share (under `lock`)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    records: list[Record] = field(default_factory=list)
    accepted: dict[str, int] = field(default_factory=dict)  # job name -> id, answered 2xx
    refused: list[str] = field(default_factory=list)  # job names answered otherwise
    recent: list[int] = field(default_factory=list)  # ids of accepted jobs, newest last
    statuses_5xx: list[str] = field(default_factory=list)  # "kind status body" samples
    counter: int = 0

    def add(self, record: Record) -> None:
        with self.lock:
            self.records.append(record)

    def next_name(self, run: str) -> str:
        with self.lock:
            self.counter += 1
            return f"soak-{run}-{self.counter}"

    def newest_job(self) -> int | None:
        with self.lock:
            return self.recent[-1] if self.recent else None

    def pick_job(self) -> int | None:
        with self.lock:
            return random.choice(self.recent[-50:]) if self.recent else None


def _request(client: httpx.Client, kind: str, shared: Shared, run: str) -> tuple[int, str]:
    """One request of this kind: (status, body head); raises httpx errors."""
    if kind == "submit":
        name = shared.next_name(run)
        body = {
            "project": PROJECT, "name": name, "gpus": 1, "time_limit": "5m",
            "command": ["echo", f"soak {name}"],
        }  # fmt: skip
        answer = client.post("/api/v1/jobs", json=body)
        with shared.lock:
            if 200 <= answer.status_code < 300:
                job_id = int(answer.json()["id"])
                shared.accepted[name] = job_id
                shared.recent.append(job_id)
            else:
                shared.refused.append(name)
        return answer.status_code, answer.text[:300]
    if kind == "list":
        answer = client.get("/api/v1/jobs", params={"limit": 20})
    elif kind == "dashboard":
        answer = client.get("/")
    elif kind == "portal":
        answer = client.get("/jobs", cookies={"fabriek_token": client.headers["x-soak-token"]})
    else:
        picked = shared.newest_job() if kind == "stream" else shared.pick_job()
        if picked is None:
            answer = client.get("/api/v1/jobs", params={"limit": 1})
        elif kind == "job":
            answer = client.get(f"/api/v1/jobs/{picked}")
        elif kind == "logs":
            answer = client.get(f"/api/v1/jobs/{picked}/logs")
        else:  # a stream: read until the job has ended and all its output is sent
            with client.stream("GET", f"/api/v1/jobs/{picked}/logs?follow=true") as streamed:
                head = b"".join(streamed.iter_bytes())[:300]
                return streamed.status_code, head.decode(errors="replace")
    return answer.status_code, answer.text[:300]


def client_loop(base: str, token: str, rate: float, stop: threading.Event, shared: Shared,
                run: str, seed: int) -> None:  # fmt: skip
    """Requests at `rate` per second (Poisson arrivals), kinds drawn from MIX, until stopped."""
    rng = random.Random(seed)
    kinds, weights = list(MIX), list(MIX.values())
    headers = {"Authorization": f"Bearer {token}", "x-soak-token": token}
    with httpx.Client(base_url=base, headers=headers, timeout=60.0) as client:
        due = time.monotonic()
        while not stop.is_set():
            due += rng.expovariate(rate)
            wait = due - time.monotonic()
            if wait > 0 and stop.wait(wait):
                return
            kind = rng.choices(kinds, weights)[0]
            started = time.monotonic()
            try:
                status, head = _request(client, kind, shared, run)
            except httpx.HTTPError as exc:
                status, head = 0, f"{type(exc).__name__}: {exc}"
            now = time.monotonic()
            shared.add(Record(now, kind, status, (now - started) * 1000))
            if status >= 500 or status == 0:
                with shared.lock:
                    shared.statuses_5xx.append(f"{kind} {status} {head}")
            # Behind after a stall (a cut, a slow answer): do not burst to catch up.
            due = max(due, time.monotonic() - 1.0)


def rss_kb(pid: int) -> int:
    """VmRSS of one process in KiB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children of all its threads, recursively)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            found.extend(kids)
            todo.extend(kids)
    return found


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def summarise(records: list[Record]) -> dict[str, Any]:
    """Per kind over these records: count, p50, p95, max (ms); statuses counted."""
    per_kind: dict[str, dict[str, float]] = {}
    for kind in MIX:
        times = [r.ms for r in records if r.kind == kind]
        if times:
            per_kind[kind] = {
                "n": len(times), "p50": percentile(times, 0.5), "p95": percentile(times, 0.95),
                "max": max(times),
            }  # fmt: skip
    statuses = Counter(str(r.status) for r in records)
    return {"kinds": per_kind, "statuses": dict(sorted(statuses.items()))}


def cut_connections(database: str) -> int:
    """Terminate every PostgreSQL backend of this database (not the service): how many."""
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    return sum(1 for (done,) in rows if done)


def cut_repeatedly(database: str, times: int) -> int:
    """`cut_connections` `times` times, a second apart (as long as a restart would take, the
    pool's fresh connections are cut again): how many backends ended in all."""
    ended = 0
    for i in range(times):
        if i:
            time.sleep(1.0)
        ended += cut_connections(database)
    return ended


def wait_until_ended(url: str, ids: list[int], timeout_s: float = 300.0) -> int:
    """Poll the store until every job of `ids` has ended: how many have not, at the end."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        while True:
            open_ = conn.execute(
                "SELECT count(*) FROM jobs WHERE id = ANY(%s) AND state <> ALL(%s)",
                (ids, list(TERMINAL)),
            ).fetchone()
            left = int(open_[0]) if open_ else 0
            if left == 0 or time.monotonic() > deadline:
                return left
            time.sleep(2)


def check_store(url: str, shared: Shared) -> dict[str, Any]:
    """The consistency checks after the run (see the module's docstring)."""
    ids = list(shared.accepted.values())
    left = wait_until_ended(url, ids)
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT j.id, j.name, j.state, j.started_at IS NOT NULL, "
            "(SELECT count(*) FROM charges c WHERE c.job_id = j.id) "
            "FROM jobs j WHERE j.name LIKE 'soak-%'"
        ).fetchall()
    by_name = Counter(name for _, name, *_ in rows)
    found = {name: (job_id, state, ran, charges) for job_id, name, state, ran, charges in rows}
    missing = [n for n in shared.accepted if n not in found]
    wrong_id = [n for n, i in shared.accepted.items() if n in found and found[n][0] != i]
    ended = [v for v in found.values() if v[1] in TERMINAL]
    ran = [v for v in ended if v[2]]
    return {
        "accepted": len(ids),
        "refused": len(shared.refused),
        "jobs_in_store": len(rows),
        "accepted_missing": len(missing),
        "accepted_wrong_id": len(wrong_id),
        "duplicated_names": sum(1 for c in by_name.values() if c > 1),
        "refused_but_written": sum(1 for n in shared.refused if n in found),
        "not_ended": left,
        "ended_by_state": dict(Counter(v[1] for v in ended)),
        "ran_without_charge": sum(1 for v in ran if v[3] == 0),
        "ran_with_several_charges": sum(1 for v in ran if v[3] > 1),
        "charges_of_jobs_never_started": sum(1 for v in ended if not v[2] and v[3] > 0),
    }


def sample(shared: Shared, since: float, pid: int, started: float, note: str) -> dict[str, Any]:
    with shared.lock:
        window = [r for r in shared.records if r.at >= since]
    kids = descendants(pid)
    return {
        "minute": round((time.monotonic() - started) / 60, 2),
        "server_rss_mb": round(rss_kb(pid) / 1024, 1),
        "children": len(kids),
        "children_rss_mb": round(sum(rss_kb(k) for k in kids) / 1024, 1),
        "requests": len(window),
        "note": note,
        **summarise(window),
    }


def fmt_row(s: dict[str, Any]) -> str:
    cells = [f"{s['minute']:.1f}", f"{s['server_rss_mb']:.0f}", str(s["requests"])]
    for kind in MIX:
        k = s["kinds"].get(kind)
        cells.append(f"{k['p50']:.0f} / {k['p95']:.0f}" if k else "-")
    errors = {st: n for st, n in s["statuses"].items() if st == "0" or int(st) >= 500}
    cells.append(", ".join(f"{n}×{st}" for st, n in errors.items()) or "0")
    cells.append(s["note"])
    return "| " + " | ".join(cells) + " |"


def table(samples: list[dict[str, Any]]) -> str:
    head = ["minute", "server RSS MiB", "requests", *(f"{k} p50/p95 ms" for k in MIX),
            "5xx / no answer", "note"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * (len(head) - 1) + "---|"]
    return "\n".join([*lines, *(fmt_row(s) for s in samples)])


def run(args: argparse.Namespace) -> dict[str, Any]:
    token = demo_token(USER).token
    shared = Shared()
    run_id = f"{int(time.time())}"
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp, throwaway_database("postgresql", Path(tmp)) as url:
        prepare(url)
        database = url.rsplit("/", 1)[1]
        with served(url, Path(tmp)) as (base, proc):
            stop = threading.Event()
            per_thread = args.rate / args.threads
            threads = [
                threading.Thread(target=client_loop, daemon=True,
                                 args=(base, token, per_thread, stop, shared, run_id, i))
                for i in range(args.threads)
            ]  # fmt: skip
            started = time.monotonic()
            for t in threads:
                t.start()
            samples: list[dict[str, Any]] = []
            end = started + args.minutes * 60
            cut_at = started + args.minutes * 30
            cut: dict[str, Any] | None = None
            since = started
            while time.monotonic() < end:
                next_sample = min(since + args.sample, end)
                note = ""
                if cut is None and cut_at <= next_sample:
                    time.sleep(max(0.0, cut_at - time.monotonic()))
                    cut = {"minute": round((time.monotonic() - started) / 60, 2),
                           "terminated": cut_repeatedly(database, args.cuts)}  # fmt: skip
                    note = f"{args.cuts} cuts: {cut['terminated']} connections ended"
                time.sleep(max(0.0, next_sample - time.monotonic()))
                samples.append(sample(shared, since, proc.pid, started, note))
                since = next_sample
                print(fmt_row(samples[-1]), flush=True)
                out.write_text(json.dumps({"samples": samples}, indent=1))
            stop.set()
            for t in threads:
                t.join(timeout=90)
            if cut is not None:
                cut["after"] = recovery(shared, started + (cut["minute"] * 60))
            checks = check_store(url, shared)
        shutil.copy(proc_log(Path(tmp)), out.with_suffix(".log"))
        server_log = out.with_suffix(".log").read_text(errors="replace")
    return {
        "machine": machine_description(), "command": command_line(), "samples": samples,
        "cut": cut, "checks": checks, "overall": summarise(shared.records),
        "server_tracebacks": server_log.count("Traceback"),
        "error_samples": shared.statuses_5xx[:40],
        "all_records": [asdict(r) for r in shared.records] if args.keep_records else None,
    }  # fmt: skip


def proc_log(tmp: Path) -> Path:
    return next(tmp.glob("serve-*.log"))


def recovery(shared: Shared, cut: float) -> dict[str, Any]:
    """Around the cut: answers by status in the 30 s after it, and how long until every
    kind answered 2xx again."""
    with shared.lock:
        after = [r for r in shared.records if r.at >= cut]
    near = [r for r in after if r.at < cut + 30]
    back: dict[str, float | None] = {}
    for kind in MIX:
        ok = [r.at for r in after if r.kind == kind and 200 <= r.status < 400]
        back[kind] = round(min(ok) - cut, 2) if ok else None
    return {
        "statuses_30s": dict(Counter(str(r.status) for r in near)),
        "first_success_s": back,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=5.0, help="requests per second, in all")
    parser.add_argument("--threads", type=int, default=4, help="client threads")
    parser.add_argument("--sample", type=float, default=60.0, help="seconds between samples")
    parser.add_argument("--out", default="soak.json", help="where the samples go (JSON)")
    parser.add_argument("--cuts", type=int, default=10, help="connection cuts at half time")
    parser.add_argument("--keep-records", action="store_true", help="every request in --out")
    args = parser.parse_args(argv)
    if why := postgres_unavailable():
        raise SystemExit(why)
    for line in machine_description():
        print(line)
    print(f"Command: {command_line()}\n", flush=True)
    print(table([]), flush=True)
    result = run(args)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"\n{table(result['samples'])}\n")
    print("Cut:", json.dumps(result["cut"]))
    print("Store checks:", json.dumps(result["checks"]))
    print("Overall:", json.dumps(result["overall"]))
    print("Server tracebacks in its log:", result["server_tracebacks"])
    for line in result["error_samples"][:10]:
        print("  error:", line)
    print(f"Median server RSS: {statistics.median(s['server_rss_mb'] for s in result['samples'])}")


if __name__ == "__main__":
    main()
