"""The site's storage under stress: a project's quota, a `kill -9` in the middle of an upload,
a missing master key, and a large file moving through bounded memory."""

from __future__ import annotations

import hashlib
import os
import signal
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fabriek.domain.datasets import DatasetDraft
from fabriek.sdk.client import FabriekClient
from fabriek.services.demo.seed import demo_token
from fabriek.settings import Settings
from tests.conftest import problem_of
from tests.servers import free_port, live_server, prepare, spawn_serve, throwaway_database
from tests.test_api_datasets import incoming, partial_upload, register, upload, wait_until

MIB = 1024 * 1024
TOKEN = demo_token("pieter").token


def pieter(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    with throwaway_database("sqlite", tmp_path) as url:
        prepare(url)
        yield url


def test_an_upload_beyond_the_quota_is_refused_and_leaves_nothing(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=sqlite_url,
        state_dir=tmp_path / "state",
        datasets_dir=tmp_path / "site-storage",
        dataset_quota_gib=2 / 1024,  # 2 MiB
    )
    with live_server(settings) as live, pieter(live.url) as c:
        register(c, "dutch-llm", "crawl")
        assert upload(c, "dutch-llm", "crawl", os.urandom(MIB)).status_code == 201
        kept = files_under(tmp_path / "site-storage")
        # Declared up front: refused before a byte is read.
        declared = upload(c, "dutch-llm", "crawl", os.urandom(MIB + 1))
        detail = str(problem_of(declared, 413)["detail"])
        assert "may hold 2.0 MiB" in detail and "holds 1.0 MiB" in detail
        # Not declared (chunked): refused as soon as it goes past.
        data = os.urandom(3 * MIB)
        chunked = c.post(
            "/api/v1/datasets/dutch-llm/crawl/versions",
            content=(data[i : i + 65536] for i in range(0, len(data), 65536)),
            headers={"X-Content-SHA256": hashlib.sha256(data).hexdigest()},
        )
        assert "needs at least" in str(problem_of(chunked, 413)["detail"])
        assert files_under(tmp_path / "site-storage") == kept
        shown = c.get("/api/v1/datasets/dutch-llm/crawl").json()
        assert [v["number"] for v in shown["versions"]] == [1]
        # What fits the rest of the quota is taken; deleting makes room again.
        assert upload(c, "dutch-llm", "crawl", os.urandom(MIB)).status_code == 201
        assert c.delete("/api/v1/datasets/dutch-llm/crawl/versions/1").status_code == 204
        assert upload(c, "dutch-llm", "crawl", os.urandom(MIB)).status_code == 201


def test_kill_minus_nine_during_an_upload_leaves_no_dataset(
    sqlite_url: str, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    port = free_port()
    env = {**os.environ, "FABRIEK_DATABASE_URL": sqlite_url, "FABRIEK_STATE_DIR": str(state),
           "FABRIEK_PORT": str(port)}  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    server = spawn_serve(env, port)
    try:
        with pieter(base) as c:
            register(c, "dutch-llm", "half")
            assert upload(c, "dutch-llm", "half", b"whole").status_code == 201
        path = "/api/v1/datasets/dutch-llm/half/versions"
        sock = partial_upload(base, "pieter", path, 64 * MIB, os.urandom(3 * MIB))
        storage = state / "datasets"
        wait_until(lambda: incoming(storage), "the upload never began")
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        sock.close()
        leftovers = incoming(storage)
        assert leftovers, "the killed upload left its file (what the restart must clean)"
        # A crash between publishing an object and committing its row leaves an orphan.
        orphan = storage / "objects" / "ab" / ("ab" + "0" * 30)
        orphan.parent.mkdir(parents=True, exist_ok=True)
        orphan.write_bytes(b"ciphertext nobody names")
        objects_before = files_under(storage / "objects")
        server = spawn_serve(env, port)
        assert incoming(storage) == []
        assert files_under(storage / "objects") == objects_before - {orphan}
        with pieter(base) as c:
            shown = c.get("/api/v1/datasets/dutch-llm/half").json()
            assert [v["number"] for v in shown["versions"]] == [1]
            assert c.get("/api/v1/datasets/dutch-llm/half/content").content == b"whole"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(20)


def test_a_lost_master_key_is_reported_not_replaced(sqlite_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=sqlite_url, state_dir=tmp_path / "state")
    key_file = settings.state_dir / "master.key"
    with live_server(settings) as live, pieter(live.url) as c:
        register(c, "dutch-llm", "keyed")
        assert upload(c, "dutch-llm", "keyed", b"secret").status_code == 201
        assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    key_file.rename(tmp_path / "elsewhere.key")
    with live_server(settings) as live, pieter(live.url) as c:
        lost = c.get("/api/v1/datasets/dutch-llm/keyed/content")
        detail = str(problem_of(lost, 503)["detail"])
        assert "no master key file" in detail and "restore" in detail
        assert not key_file.exists()
    (tmp_path / "elsewhere.key").rename(key_file)
    with live_server(settings) as live, pieter(live.url) as c:
        assert c.get("/api/v1/datasets/dutch-llm/keyed/content").content == b"secret"


def test_a_64_mib_file_moves_through_bounded_memory(sqlite_url: str, tmp_path: Path) -> None:
    """Upload and download of 64 MiB through the SDK and the server (one process here):
    Python's peak allocation stays a small fraction of the file."""
    source = tmp_path / "big.bin"
    with source.open("wb") as out:
        for _ in range(64):
            out.write(os.urandom(MIB))
    settings = Settings(database_url=sqlite_url, state_dir=tmp_path / "state")
    with live_server(settings) as live, FabriekClient(live.url, TOKEN) as sdk:
        sdk.datasets.register(DatasetDraft(project="dutch-llm", name="big.bin"))
        tracemalloc.start()
        try:
            version = sdk.datasets.push("dutch-llm", "big.bin", source)
            number, digest = sdk.datasets.pull("dutch-llm", "big.bin", tmp_path / "back.bin")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert version.size_bytes == 64 * MIB and number == version.number
    assert digest == version.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert peak < 24 * MIB, f"peak {peak / MIB:.1f} MiB for a 64 MiB file"
