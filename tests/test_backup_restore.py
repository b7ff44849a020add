"""`fabriek backup` while the server runs and writes, `fabriek restore` on a fresh machine (a
fresh database and state folder), with the master key supplied apart: the restored factory's
audit chain verifies and its dataset decrypts, through the API. On SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fabriek.domain.backup import FileSum, Manifest, from_json, object_path, to_json
from fabriek.domain.errors import Conflict, InvalidInput
from fabriek.services.backup import restore_backup, take_backup
from fabriek.services.demo.seed import demo_token
from fabriek.settings import Settings
from tests.servers import free_port, postgres_unavailable, prepare, spawn_serve, throwaway_database
from tests.test_job_datasets import push

FABRIEK = [sys.executable, "-m", "fabriek.main"]
DATA = b"patient,age\n" + b"".join(b"%d,%d\n" % (i, 20 + i % 60) for i in range(20_000))


def env_for(url: str, state: Path) -> dict[str, str]:
    return {**os.environ, "FABRIEK_DATABASE_URL": url, "FABRIEK_STATE_DIR": str(state),
            "FABRIEK_DISPATCH_INTERVAL_S": "0.2"}  # fmt: skip


def client(port: int, user: str) -> httpx.Client:
    token = demo_token(user).token
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                        headers={"Authorization": f"Bearer {token}"})  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"])
def two_databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The old machine's database (with the demo factory) and the new machine's, empty."""
    if request.param == "postgresql" and (reason := postgres_unavailable()):
        pytest.fail(reason)
    with (
        throwaway_database(request.param, tmp_path) as old,
        throwaway_database(request.param, tmp_path) as new,
    ):
        prepare(old)
        yield old, new


def submit_while(port: int, stop: threading.Event, accepted: list[int]) -> None:
    """Submit jobs (queued far in the future) until stopped: the writes during a backup."""
    with client(port, "maria") as maria:
        i = 0
        while not stop.is_set():
            i += 1
            made = maria.post("/api/v1/jobs", json={
                "project": "dutch-llm", "name": f"during-{i}", "command": ["true"], "gpus": 1,
                "time_limit": "1h", "earliest_start": "2099-01-01T00:00:00Z",
            })  # fmt: skip
            if made.status_code == 429:  # the server's default write limit: wait, as a client does
                stop.wait(float(made.headers.get("Retry-After", "1")))
                continue
            assert made.status_code == 201, made.text
            accepted.append(int(made.json()["id"]))


def test_a_backup_taken_while_the_server_writes_restores_on_a_fresh_machine(
    two_databases: tuple[str, str], tmp_path: Path
) -> None:
    old_url, new_url = two_databases
    old_state, new_state, backup = tmp_path / "old", tmp_path / "new", tmp_path / "backup"
    port = free_port()
    server = spawn_serve(env_for(old_url, old_state), port)
    accepted: list[int] = []
    try:
        with client(port, "pieter") as pieter:
            push(pieter, "dutch-llm", "patients", DATA)
        stop = threading.Event()
        writer = threading.Thread(target=submit_while, args=(port, stop, accepted))
        writer.start()
        while len(accepted) < 5:
            stop.wait(0.05)
        before = len(accepted)
        done = subprocess.run([*FABRIEK, "backup", str(backup)], env=env_for(old_url, old_state),
                              capture_output=True, text=True, check=False)  # fmt: skip
        stop.set()
        writer.join()
        assert done.returncode == 0, done.stderr
        assert len(accepted) > before, "the server went on writing during the backup"
    finally:
        server.terminate()
        server.wait(timeout=30)
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["master_key_included"] is False and manifest["schema_revision"]
    assert len(manifest["objects"]) == 1 and not list(backup.rglob("master.key"))
    # The new machine: the master key comes apart from the backup.
    key = tmp_path / "kept-apart.key"
    shutil.copyfile(old_state / "master.key", key)
    restored = subprocess.run(
        [*FABRIEK, "restore", str(backup), "--master-key", str(key), "--json"],
        env=env_for(new_url, new_state), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    outcome = json.loads(restored.stdout)
    assert outcome["master_key"] == "matches" and outcome["audit_break"] is None
    port = free_port()
    server = spawn_serve(env_for(new_url, new_state), port)
    try:
        with client(port, "admin") as admin:
            verified = admin.get("/api/v1/audit/verify")
            assert verified.status_code == 200 and verified.json()["ok"], verified.text
        with client(port, "pieter") as pieter:
            content = pieter.get("/api/v1/datasets/dutch-llm/patients/content")
            assert content.status_code == 200, content.text
            assert hashlib.sha256(content.content).digest() == hashlib.sha256(DATA).digest()
        with client(port, "maria") as maria:
            for job_id in accepted[:before]:  # accepted before the backup began: all there
                assert maria.get(f"/api/v1/jobs/{job_id}").status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)


def sqlite_factory(tmp_path: Path, name: str) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / name / 'f.db'}",
                    state_dir=tmp_path / name)  # fmt: skip


def test_restore_refuses_a_damaged_backup_a_wrong_key_and_a_database_in_use(
    tmp_path: Path,
) -> None:
    old = sqlite_factory(tmp_path, "old")
    prepare(old.database_url)
    manifest = take_backup(old, tmp_path / "b", datetime.now(UTC))
    assert manifest.schema_revision and manifest.objects == ()
    # A database that holds a factory already is never overwritten.
    with pytest.raises(Conflict, match="fresh, empty database"):
        restore_backup(old, tmp_path / "b", None)
    # A wrong master key is refused when the backup names the right one.
    (tmp_path / "wrong.key").write_text("A" * 43 + "=\n")
    (tmp_path / "wrong.key").chmod(0o600)
    named = tmp_path / "named"
    shutil.copytree(tmp_path / "b", named)
    text = (named / "manifest.json").read_text()
    (named / "manifest.json").write_text(text.replace('"master_key_ids": []',
                                                      '"master_key_ids": ["k1"]'))  # fmt: skip
    with pytest.raises(Conflict, match="not the one that wrapped"):
        restore_backup(sqlite_factory(tmp_path, "n1"), named, tmp_path / "wrong.key")
    # A damaged file is named.
    with (tmp_path / "b" / "database.sqlite").open("r+b") as f:
        f.seek(200)
        f.write(b"\xff")
    with pytest.raises(InvalidInput, match="does not match its checksum"):
        restore_backup(sqlite_factory(tmp_path, "n2"), tmp_path / "b", None)
    # And a backup of one kind is not restored into the other.
    pg = Settings(database_url="postgresql+psycopg://postgres@127.0.0.1:5432/none",
                  state_dir=tmp_path / "pg")  # fmt: skip
    with pytest.raises(InvalidInput, match="sqlite database; the target is postgresql"):
        restore_backup(pg, named, None)


sums = st.builds(
    FileSum,
    path=st.text("abc", min_size=1, max_size=5).map(lambda s: f"x/{s}"),
    bytes=st.integers(0, 2**40),
    sha256=st.text("0123456789abcdef", min_size=64, max_size=64),
)


@given(
    database=sums,
    names=st.lists(st.text("0123456789abcdef", min_size=32, max_size=32), max_size=4),
    keys=st.lists(st.text("0123456789abcdef", min_size=1, max_size=8), max_size=3),
    revision=st.none() | st.sampled_from(["0001", "0019"]),
)
def test_a_manifest_reads_back_as_written(
    database: FileSum, names: list[str], keys: list[str], revision: str | None
) -> None:
    objects = tuple(FileSum(object_path(n), 1, "0" * 64) for n in names)
    manifest = Manifest("0.1.0", "2026-01-01T00:00:00+00:00", "postgresql", revision,
                        database, objects, tuple(keys))  # fmt: skip
    assert from_json(to_json(manifest)) == manifest


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: {**m, "format": 2}, "backup format"),
        (lambda m: {**m, "master_key_included": True}, "holds a master key"),
        (lambda m: {**m, "database": {**m["database"], "path": "../etc/passwd"}}, "safe path"),
        (
            lambda m: {**m, "objects": [{"path": "objects/zz/x", "bytes": 1, "sha256": "0" * 64}]},
            "odd path|not an object name",
        ),
    ],
)
def test_a_manifest_that_is_not_one_is_refused(change: object, message: str) -> None:
    good = json.loads(to_json(Manifest("0.1.0", "t", "sqlite", "0019",
                                       FileSum("database.sqlite", 1, "0" * 64))))  # fmt: skip
    assert callable(change)
    with pytest.raises(InvalidInput, match=message):
        from_json(json.dumps(change(good)))
