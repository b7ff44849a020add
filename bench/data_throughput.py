"""Dataset upload and download through the real server, against a plain file copy on the same disk.

One run, in one folder (on one disk):

1. a source file of `--size-gib` GiB of random bytes is written (not timed);
2. plain copy: the source copied to another file and fsynced (`shutil.copyfile`);
3. `fabriek serve` (one uvicorn process, SQLite) starts with its state dir (and so the
   site's storage and the master key) in that folder;
4. upload: the SDK's `push_version` streams the file (the client's SHA-256 pass over the file
   beforehand is timed apart): the server encrypts it in 1 MiB AES-256-GCM chunks into
   `incoming/`, hashes it, fsyncs, renames and commits;
5. download: the SDK's `pull_version` streams the decrypted data to a temporary file,
   checks the SHA-256, fsyncs and renames.

Throughput is in MB/s (10^6 bytes per second). The server's peak memory is its VmHWM (peak
resident set) from /proc, read after start-up and again after the transfers.

    .venv/bin/python -m bench.data_throughput --size-gib 2
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.servers import free_port, prepare, throwaway_database

from bench.api_load import (
    SERVE,
    command_line,
    machine_cpu_ticks,
    machine_description,
    process_cpu_s,
    server_env,
    stop_server,
    wait_for_quiet,
    wait_ready,
)
from fabriek.domain.datasets import DatasetDraft
from fabriek.sdk.client import FabriekClient
from fabriek.sdk.transfer import file_sha256
from fabriek.services.demo.seed import demo_token

MIB = 1024 * 1024


def peak_rss_mib(pid: int) -> float:
    """A process's peak resident set (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def write_random(path: Path, size: int) -> None:
    with path.open("wb") as out:
        left = size
        while left:
            block = os.urandom(min(MIB, left))
            out.write(block)
            left -= len(block)
        out.flush()
        os.fsync(out.fileno())


@dataclass
class Step:
    """One timed operation: wall seconds, the server's CPU seconds in it (if a server ran),
    how busy the machine's CPUs were meanwhile, and how busy just before (after waiting up
    to 20 s for them to be quiet)."""

    label: str
    seconds: float
    server_cpu_s: float | None
    busy: float
    busy_before: float


def timed(label: str, action: Callable[[], object], server_pid: int | None = None) -> Step:
    before = wait_for_quiet()
    cpu_from = process_cpu_s(server_pid) if server_pid else None
    busy_from, total_from = machine_cpu_ticks()
    started = time.perf_counter()
    action()
    seconds = time.perf_counter() - started
    busy_to, total_to = machine_cpu_ticks()
    cpu_to = process_cpu_s(server_pid) if server_pid else None
    server = cpu_to - cpu_from if cpu_to is not None and cpu_from is not None else None
    share = (busy_to - busy_from) / max(1, total_to - total_from)
    return Step(label, seconds, server, share, before)


def plain_copy(source: Path, dest: Path) -> None:
    shutil.copyfile(source, dest)
    with dest.open("rb+") as out:
        os.fsync(out.fileno())


def mb_s(size: int, seconds: float) -> float:
    return size / seconds / 1e6


def run(size: int, folder: Path) -> list[str]:
    source = folder / "source.bin"
    write_random(source, size)
    copy = timed(
        "plain file copy (copyfile + fsync)", lambda: plain_copy(source, folder / "copy.bin")
    )
    (folder / "copy.bin").unlink()
    with throwaway_database("sqlite", folder) as url:
        prepare(url)
        port = free_port()
        log = (folder / "serve.log").open("wb")
        proc = subprocess.Popen(
            SERVE, env=server_env(url, port, folder / "state"), stdout=log, stderr=subprocess.STDOUT
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base, proc)
            ready_rss = peak_rss_mib(proc.pid)
            with FabriekClient(base, demo_token("pieter").token) as sdk:
                sdk.datasets.register(DatasetDraft(project="dutch-llm", name="source.bin"))
                digest: list[str] = []
                hashing = timed(
                    "client SHA-256 pass before the upload",
                    lambda: digest.append(file_sha256(source)),
                )
                up = timed(
                    "upload (stream, encrypt, hash, fsync, commit)",
                    lambda: sdk.datasets.push("dutch-llm", "source.bin", source, sha256=digest[0]),
                    proc.pid,
                )
                down = timed(
                    "download (decrypt, stream, client hash, fsync)",
                    lambda: sdk.datasets.pull("dutch-llm", "source.bin", folder / "back.bin"),
                    proc.pid,
                )
            peak_rss = peak_rss_mib(proc.pid)
        finally:
            stop_server(proc)
            log.close()
    stored = sum(
        p.stat().st_size for p in (folder / "state" / "datasets").rglob("*") if p.is_file()
    )
    client_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = [
        f"| {st.label} | {st.seconds:.1f} | {mb_s(size, st.seconds):,.0f} | "
        f"{'-' if st.server_cpu_s is None else f'{st.server_cpu_s:.1f}'} | "
        f"{st.busy * 100:.0f} % | {st.busy_before * 100:.0f} % |"
        for st in (copy, hashing, up, down)
    ]
    return [
        f"file: {size / MIB:,.0f} MiB ({size:,} bytes); stored ciphertext {stored:,} bytes "
        f"(+{stored - size:,} bytes of headers, nonces and tags)",
        "",
        "| operation | seconds | MB/s | server CPU s | CPUs busy during | CPUs busy before |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"server peak RSS (VmHWM): {ready_rss:.0f} MiB after start-up, {peak_rss:.0f} MiB after "
        f"upload and download; the client's: {client_rss:.0f} MiB",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gib", type=float, default=2.0, help="size of the file, GiB")
    parser.add_argument(
        "--dir", type=Path, default=Path.cwd(), help="where to work (the disk measured)"
    )
    args = parser.parse_args(argv)
    size = int(args.size_gib * 1024 * MIB)
    folder = Path(tempfile.mkdtemp(prefix="fabriek-data-bench-", dir=args.dir))
    try:
        lines = run(size, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"command: {command_line()}")
    for line in machine_description():
        print(line)
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
