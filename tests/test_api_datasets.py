"""Datasets end to end over HTTP: encrypted streamed upload and download, who may read and
grant, bad input that leaves nothing behind, key rotation and crypto-shredding."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shutil
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select, text

from fabriek.domain.errors import NotFound
from fabriek.domain.roles import Principal
from fabriek.sdk import ApiUnreachable
from fabriek.sdk.client import FabriekClient
from fabriek.services.datasets.download import open_plaintext
from fabriek.services.datasets.vault import Vault
from fabriek.services.demo.seed import demo_token
from fabriek.services.jobs.datasets import resolve
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.envelope import (
    Secret,
    Undecryptable,
    data_key_context,
    open_sealed,
    organisation_key_context,
    read_master_key,
    unwrap,
)
from fabriek.store.tables import Base, DatasetVersionRow, OrganisationKeyRow, ProjectRow
from tests.conftest import Client, problem_of
from tests.people import new_person
from tests.servers import LiveServer
from tests.test_api_budgets import new_project
from tests.test_api_users import org_id

MIB = 1024 * 1024


def storage(server: LiveServer) -> Path:
    return server.settings.state_dir / "datasets"


def stored(server: LiveServer) -> set[str]:
    """Every file in the site's storage (objects and uploads under way)."""
    return {str(p.relative_to(storage(server))) for p in storage(server).rglob("*") if p.is_file()}


def register(c: httpx.Client, project: str, name: str, **terms: Any) -> dict[str, Any]:
    made = c.post("/api/v1/datasets", json={"project": project, "name": name, **terms})
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


def upload(
    c: httpx.Client, project: str, name: str, data: bytes, sha: str | None = None
) -> httpx.Response:
    digest = sha or hashlib.sha256(data).hexdigest()
    return c.post(
        f"/api/v1/datasets/{project}/{name}/versions",
        content=data,
        headers={"X-Content-SHA256": digest},
    )


def versions(c: httpx.Client, project: str, name: str) -> list[dict[str, Any]]:
    shown = c.get(f"/api/v1/datasets/{project}/{name}")
    assert shown.status_code == 200, shown.text
    found: list[dict[str, Any]] = shown.json()["versions"]
    return found


def test_a_file_of_a_few_mib_goes_up_and_comes_back_the_same(
    client: Client, unique: str, server: LiveServer
) -> None:
    pieter = client("pieter")
    register(pieter, "dutch-llm", unique, description="web crawl", licence="CC-BY-4.0")
    data = os.urandom(3 * MIB + 17)
    made = upload(pieter, "dutch-llm", unique, data)
    assert made.status_code == 201, made.text
    version = made.json()
    assert version["number"] == 1 and version["size_bytes"] == len(data)
    assert version["sha256"] == hashlib.sha256(data).hexdigest()
    # Another member of the project reads it back, decrypted, with the digest to check.
    back = client("maria").get(f"/api/v1/datasets/dutch-llm/{unique}/content")
    assert back.status_code == 200
    assert back.content == data
    assert back.headers["x-content-sha256"] == version["sha256"]
    assert back.headers["x-dataset-version"] == "1"
    # At rest it is ciphertext: the plaintext's first MiB is nowhere in the storage.
    for name in stored(server):
        assert data[:4096] not in (storage(server) / name).read_bytes()
    # A second version; the first stays readable, the latest is the default.
    assert upload(pieter, "dutch-llm", unique, b"second").status_code == 201
    assert [v["number"] for v in versions(pieter, "dutch-llm", unique)] == [2, 1]
    assert pieter.get(f"/api/v1/datasets/dutch-llm/{unique}/content").content == b"second"
    first = pieter.get(f"/api/v1/datasets/dutch-llm/{unique}/content", params={"version": 1})
    assert first.content == data
    listed = pieter.get("/api/v1/datasets", params={"name": unique}).json()["items"]
    assert [(d["project"], d["latest_version"], d["access"]) for d in listed] == [
        ("dutch-llm", 2, "owner")
    ]


def test_a_checksum_mismatch_keeps_nothing(client: Client, unique: str, server: LiveServer) -> None:
    pieter = client("pieter")
    register(pieter, "dutch-llm", unique)
    before = stored(server)
    wrong = upload(pieter, "dutch-llm", unique, os.urandom(MIB + 5), sha="0" * 64)
    body = problem_of(wrong, 422)
    assert "not the declared" in str(body["detail"]) and "nothing was kept" in str(body["detail"])
    assert stored(server) == before
    assert versions(pieter, "dutch-llm", unique) == []
    missing = pieter.post(f"/api/v1/datasets/dutch-llm/{unique}/versions", content=b"x")
    assert "x-content-sha256" in str(problem_of(missing, 422)["detail"]).lower()


def wait_until(check: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def partial_upload(url: str, user: str, path: str, declared: int, part: bytes) -> socket.socket:
    """An upload whose client stops halfway (the socket is returned, still open)."""
    where = urlsplit(url)
    sock = socket.create_connection((where.hostname, where.port))
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {where.netloc}\r\n"
        f"Authorization: Bearer {demo_token(user).token}\r\n"
        f"X-Content-SHA256: {'a' * 64}\r\nContent-Length: {declared}\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    )
    sock.sendall(head.encode() + part)
    return sock


def incoming(server_storage: Path) -> list[Path]:
    folder = server_storage / "incoming"
    return list(folder.iterdir()) if folder.is_dir() else []


def test_a_cut_off_upload_keeps_nothing(client: Client, unique: str, server: LiveServer) -> None:
    pieter = client("pieter")
    register(pieter, "dutch-llm", unique)
    before = stored(server)
    path = f"/api/v1/datasets/dutch-llm/{unique}/versions"
    sock = partial_upload(server.url, "pieter", path, 4 * MIB, os.urandom(MIB))
    wait_until(lambda: incoming(storage(server)), "the upload never began")
    sock.close()
    wait_until(lambda: not incoming(storage(server)), "the cut-off upload's file stayed")
    assert stored(server) == before
    assert versions(pieter, "dutch-llm", unique) == []


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("../../etc/passwd", "path separator"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        ("..", "'..'"),
        ("x..y", "'..'"),
        ("bad\nname", "control characters"),
        ("bad\x00name", "control characters"),
        ("bell\x07", "control characters"),
        (".hidden", "starting with a letter or digit"),
        ("x" * 129, "at most 128 characters"),
    ],
)
def test_unsafe_names_are_refused_with_the_reason(client: Client, name: str, words: str) -> None:
    refused = client("pieter").post("/api/v1/datasets", json={"project": "dutch-llm", "name": name})
    body = problem_of(refused, 422)
    assert words in str(body["detail"])
    listed = client("pieter").get("/api/v1/datasets", params={"name": name})
    if any(ord(c) < 0x20 for c in name):
        # The edge refuses a control character in a query before any lookup.
        problem_of(listed, 422)
    else:
        assert listed.json()["total"] == 0


def test_a_path_in_the_url_reaches_no_dataset(client: Client) -> None:
    pieter = client("pieter")
    for path in ("/api/v1/datasets/dutch-llm/..%2F..%2Fmaster.key/content",
                 "/api/v1/datasets/dutch-llm/%2E%2E/content"):  # fmt: skip
        assert pieter.get(path).status_code == 404


def test_personal_data_needs_its_terms(client: Client, unique: str) -> None:
    pieter = client("pieter")
    refused = pieter.post(
        "/api/v1/datasets",
        json={"project": "dutch-llm", "name": unique, "classification": "special-category"},
    )
    detail = str(problem_of(refused, 422)["detail"])
    for term in ("legal_basis", "purpose", "retention_until", "special_category_condition"):
        assert term in detail
    past = pieter.post(
        "/api/v1/datasets",
        json={"project": "dutch-llm", "name": unique, "classification": "personal",
              "legal_basis": "consent", "purpose": "triage model",
              "retention_until": "2001-01-01"},
    )  # fmt: skip
    assert "has passed" in str(problem_of(past, 422)["detail"])
    made = register(
        pieter, "dutch-llm", unique, classification="special-category", legal_basis="public-task",
        special_category_condition="research", purpose="triage model",
        retention_until="2099-12-31", residency="nl",
    )  # fmt: skip
    assert made["classification"] == "special-category" and made["residency"] == "nl"
    again = pieter.post("/api/v1/datasets", json={"project": "dutch-llm", "name": unique})
    assert "already has a dataset" in str(problem_of(again, 409)["detail"])


def test_who_may_see_read_write_and_grant(client: Client, unique: str, server: LiveServer) -> None:
    pieter, maria, mo, admin = client("pieter"), client("maria"), client("mo"), client("admin")
    register(pieter, "dutch-llm", unique)
    assert upload(pieter, "dutch-llm", unique, b"weights of evidence").status_code == 201
    content = f"/api/v1/datasets/dutch-llm/{unique}/content"
    # Outsiders cannot tell it exists.
    for path in (f"/api/v1/datasets/dutch-llm/{unique}", content):
        assert "not visible to you" in str(problem_of(mo.get(path), 404)["detail"])
    assert problem_of(upload(mo, "dutch-llm", unique, b"x"), 404)
    assert mo.get("/api/v1/datasets", params={"name": unique}).json()["total"] == 0
    # Admins see the terms but read the data only through a grant.
    assert admin.get(f"/api/v1/datasets/dutch-llm/{unique}").json()["access"] == "admin"
    assert "through a grant" in str(problem_of(admin.get(content), 403)["detail"])
    # Members read and write; only the principal investigator grants and deletes.
    assert upload(maria, "dutch-llm", unique, b"v2").status_code == 201
    refused = maria.post(
        f"/api/v1/datasets/dutch-llm/{unique}/grants", json={"project": "legal-nl"}
    )
    assert "only the principal investigator of dutch-llm" in str(problem_of(refused, 403)["detail"])
    assert problem_of(maria.delete(f"/api/v1/datasets/dutch-llm/{unique}"), 403)
    # A project of the same organisation is granted without more ado, and reads.
    # Rita here is a new colleague at TU Delft, not the demo's reviewer (who is in no project).
    rita = new_person(server, f"{unique}-rita", "Technische Universiteit Delft")
    sister = new_project(client, f"{unique}-b", pi=f"{unique}-rita")
    made = pieter.post(f"/api/v1/datasets/dutch-llm/{unique}/grants", json={"project": sister})
    assert made.status_code == 201 and made.json()["cross_organisation"] is False
    assert rita.get(content).content == b"v2"
    seen = rita.get(f"/api/v1/datasets/dutch-llm/{unique}").json()
    assert seen["access"] == "granted" and seen["grants"] == []  # others' grants are not hers
    assert "only members of project dutch-llm" in str(
        problem_of(upload(rita, "dutch-llm", unique, b"x"), 403)["detail"]
    )
    assert problem_of(rita.delete(f"/api/v1/datasets/dutch-llm/{unique}"), 403)
    assert pieter.get(f"/api/v1/datasets/dutch-llm/{unique}").json()["grants"] == [sister]
    # Revoked: she no longer sees it.
    assert pieter.delete(f"/api/v1/datasets/dutch-llm/{unique}/grants/{sister}").status_code == 204
    assert problem_of(rita.get(content), 404)
    assert problem_of(pieter.delete(f"/api/v1/datasets/dutch-llm/{unique}/grants/{sister}"), 404)
    # The owner sees every access on the audit trail, the grantee's download among them.
    trail = pieter.get("/api/v1/audit", params={"dataset": unique, "limit": 100}).json()["items"]
    seen_actions = [(e["action"], e["actor"]) for e in reversed(trail)]
    assert seen_actions == [
        ("upload", "pieter"), ("upload", "maria"), ("grant", "pieter"),
        ("download", f"{unique}-rita"), ("revoke", "pieter"),
    ]  # fmt: skip


def test_a_grant_to_another_organisation_needs_the_owners_consent(
    client: Client, unique: str, server: LiveServer
) -> None:
    pieter, admin, mo = client("pieter"), client("admin"), client("mo")
    register(pieter, "dutch-llm", unique, classification="confidential")
    assert upload(pieter, "dutch-llm", unique, b"trade secrets").status_code == 201
    grants = f"/api/v1/datasets/dutch-llm/{unique}/grants"
    plain = pieter.post(grants, json={"project": "legal-nl"})
    detail = str(problem_of(plain, 403)["detail"])
    assert "Amsterdam Language Models" in detail and "cross_organisation=true" in detail
    by_admin = admin.post(grants, json={"project": "legal-nl", "cross_organisation": True})
    assert "only the principal investigator of dutch-llm" in str(
        problem_of(by_admin, 403)["detail"]
    )
    assert problem_of(mo.get(f"/api/v1/datasets/dutch-llm/{unique}/content"), 404)
    consented = pieter.post(grants, json={"project": "legal-nl", "cross_organisation": True})
    assert consented.status_code == 201, consented.text
    assert consented.json()["cross_organisation"] is True
    assert mo.get(f"/api/v1/datasets/dutch-llm/{unique}/content").content == b"trade secrets"
    # What a job of legal-nl will use: the version it may read, decrypted.
    engine = make_engine(server.settings.database_url)
    with make_sessions(engine)() as session:
        legal = session.scalars(select(ProjectRow.id).where(ProjectRow.name == "legal-nl")).one()
        mo_as_caller = Principal(0, "mo")  # resolve checks the project, not the caller
        [read] = resolve(session, mo_as_caller, legal, "legal-nl", [f"dutch-llm/{unique}"])
        assert read.project == "dutch-llm" and not read.personal  # another's, confidential
        version = session.get(DatasetVersionRow, read.version_id)
        assert version is not None
        vault = Vault.from_settings(server.settings)
        assert b"".join(open_plaintext(session, vault, version)) == b"trade secrets"
        with pytest.raises(NotFound):
            resolve(session, mo_as_caller, legal + 10_000, "legal-nl", [f"dutch-llm/{unique}"])
    engine.dispose()
    again = pieter.post(grants, json={"project": "legal-nl", "cross_organisation": True})
    assert "already holds a grant" in str(problem_of(again, 409)["detail"])
    assert problem_of(pieter.post(grants, json={"project": "no-such-project"}), 422)
    assert problem_of(pieter.post(grants, json={"project": "dutch-llm"}), 422)


def keys_in_store(url: str, state_dir: Path) -> tuple[Secret, list[Secret], list[Secret]]:
    """Everything the system holds that could decrypt: the master key, every organisation key
    still wrapped, every data key still wrapped."""
    master = read_master_key(state_dir / "master.key")
    assert master is not None
    engine = make_engine(url)
    try:
        with make_sessions(engine)() as session:
            org_rows = session.scalars(
                select(OrganisationKeyRow).where(OrganisationKeyRow.wrapped_key.is_not(None))
            ).all()
            orgs = {
                (k.organisation_id, k.version): unwrap(
                    master, k.wrapped_key or b"",
                    organisation_key_context(k.organisation_id, k.version),
                )
                for k in org_rows
            }  # fmt: skip
            data = [
                unwrap(orgs[(v.organisation_id, v.key_version)], v.wrapped_data_key,
                       data_key_context(v.object_name))
                for v in session.scalars(select(DatasetVersionRow))
            ]  # fmt: skip
    finally:
        engine.dispose()
    return master, list(orgs.values()), data


def object_of(url: str, dataset_sha: str) -> str:
    engine = make_engine(url)
    try:
        with make_sessions(engine)() as session:
            return str(
                session.scalar(
                    select(DatasetVersionRow.object_name).where(
                        DatasetVersionRow.sha256 == dataset_sha
                    )
                )
            )
    finally:
        engine.dispose()


def opens_with(key: Secret, object_name: str, ciphertext: Path) -> bool:
    try:
        with ciphertext.open("rb") as source:
            b"".join(open_sealed(key, object_name, source))
        return True
    except Undecryptable:
        return False


def test_a_deleted_dataset_cannot_be_decrypted_from_a_copy(
    client: Client, unique: str, server: LiveServer, tmp_path: Path
) -> None:
    pieter = client("pieter")
    register(pieter, "dutch-llm", unique)
    data = os.urandom(2 * MIB + 3)
    version = upload(pieter, "dutch-llm", unique, data).json()
    name = object_of(server.settings.database_url, version["sha256"])
    copy = tmp_path / "stolen-copy"
    shutil.copyfile(storage(server) / "objects" / name[:2] / name, copy)
    # Before the delete, the system's keys open the copy (the test can tell).
    master, orgs, data_keys = keys_in_store(server.settings.database_url, server.settings.state_dir)
    assert any(opens_with(k, name, copy) for k in data_keys)
    assert pieter.delete(f"/api/v1/datasets/dutch-llm/{unique}").status_code == 204
    assert not (storage(server) / "objects" / name[:2] / name).exists()
    assert problem_of(pieter.get(f"/api/v1/datasets/dutch-llm/{unique}"), 404)
    # After it, nothing the system still holds opens the copy.
    master, orgs, data_keys = keys_in_store(server.settings.database_url, server.settings.state_dir)
    assert data_keys or orgs  # other tests' datasets keep keys: the check has candidates
    for key in [master, *orgs, *data_keys]:
        assert not opens_with(key, name, copy)


def test_rotation_rewraps_and_the_data_still_reads(
    client: Client, unique: str, server: LiveServer
) -> None:
    pieter = client("pieter")
    register(pieter, "dutch-llm", unique)
    data = os.urandom(MIB + 1)
    assert upload(pieter, "dutch-llm", unique, data).status_code == 201
    delft = org_id(client, "Technische Universiteit Delft")
    before = [
        k for k in pieter.get("/api/v1/organisation-keys").json() if k["organisation_id"] == delft
    ]
    current = next(k for k in before if k["current"])
    name = object_of(server.settings.database_url, hashlib.sha256(data).hexdigest())
    ciphertext = (storage(server) / "objects" / name[:2] / name).read_bytes()
    rotated = pieter.post(f"/api/v1/organisation-keys/{delft}/rotate")
    assert rotated.status_code == 200, rotated.text
    done = rotated.json()
    assert done["from_version"] == current["version"]
    assert done["to_version"] == current["version"] + 1 and done["data_keys_rewrapped"] >= 1
    # The data was not re-encrypted, and reads as before.
    assert (storage(server) / "objects" / name[:2] / name).read_bytes() == ciphertext
    assert pieter.get(f"/api/v1/datasets/dutch-llm/{unique}/content").content == data
    assert versions(pieter, "dutch-llm", unique)[0]["key_version"] == done["to_version"]
    after = {k["version"]: k for k in pieter.get("/api/v1/organisation-keys").json()
             if k["organisation_id"] == delft}  # fmt: skip
    assert after[done["to_version"]]["current"]
    assert not after[current["version"]]["current"] and after[current["version"]]["data_keys"] == 0
    # The retired version's material is gone from the store.
    engine = make_engine(server.settings.database_url)
    with make_sessions(engine)() as session:
        old = session.get(OrganisationKeyRow, (delft, current["version"]))
        assert old is not None and old.wrapped_key is None and old.retired_at is not None
    engine.dispose()
    # Only admins and the organisation's principal investigators rotate.
    for who in ("maria", "mo"):
        assert "may rotate" in str(
            problem_of(client(who).post(f"/api/v1/organisation-keys/{delft}/rotate"), 403)["detail"]
        )
    assert problem_of(client("admin").post("/api/v1/organisation-keys/99999/rotate"), 404)


def encodings(secret: Secret) -> list[bytes]:
    raw = secret.reveal()
    return [
        raw,
        raw.hex().encode(),
        base64.b64encode(raw),
        base64.urlsafe_b64encode(raw).rstrip(b"="),
    ]


def test_no_key_material_in_answers_rows_or_logs(
    client: Client, unique: str, server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pieter = client("pieter")
    answers = [
        pieter.post("/api/v1/datasets", json={"project": "dutch-llm", "name": unique}).content
    ]
    answers.append(upload(pieter, "dutch-llm", unique, os.urandom(1000)).content)
    answers += [
        pieter.get(f"/api/v1/datasets/dutch-llm/{unique}").content,
        pieter.get("/api/v1/datasets").content,
        pieter.get("/api/v1/organisation-keys").content,
        client("admin").get("/api/v1/organisation-keys").content,
        pieter.post(f"/api/v1/datasets/dutch-llm/{unique}/versions", content=b"x").content,
        pieter.get(f"/api/v1/datasets/dutch-llm/{unique}/content").content,
    ]
    master, orgs, data_keys = keys_in_store(server.settings.database_url, server.settings.state_dir)
    secrets_ = [e for k in [master, *orgs, *data_keys] for e in encodings(k)]
    engine = make_engine(server.settings.database_url)
    dumped: list[bytes] = []
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(text(f'SELECT * FROM "{table.name}"')):
                for value in row:
                    dumped.append(
                        bytes(value)
                        if isinstance(value, bytes | memoryview)
                        else str(value).encode()
                    )
    engine.dispose()
    logged = [r.getMessage().encode() for r in caplog.records]
    assert logged, "the server's logs were captured"
    for secret in secrets_:
        assert not any(secret in a for a in answers)
        assert not any(secret in v for v in dumped)
        assert not any(secret in line for line in logged)


def test_a_dataset_of_a_project_one_is_not_in_cannot_be_registered(
    client: Client, unique: str
) -> None:
    refused = client("mo").post("/api/v1/datasets", json={"project": "dutch-llm", "name": unique})
    assert problem_of(refused, 404)
    by_admin = client("admin").post(
        "/api/v1/datasets", json={"project": "dutch-llm", "name": unique}
    )
    assert "only members of project dutch-llm" in str(problem_of(by_admin, 403)["detail"])


def test_deleting_one_version_keeps_the_others(
    client: Client, unique: str, server: LiveServer
) -> None:
    pieter = client("pieter")
    register(pieter, "dutch-llm", unique)
    for body in (b"one", b"two"):
        assert upload(pieter, "dutch-llm", unique, body).status_code == 201
    before = stored(server)
    assert pieter.delete(f"/api/v1/datasets/dutch-llm/{unique}/versions/1").status_code == 204
    assert len(before - stored(server)) == 1
    assert [v["number"] for v in versions(pieter, "dutch-llm", unique)] == [2]
    assert pieter.get(f"/api/v1/datasets/dutch-llm/{unique}/content").content == b"two"
    assert problem_of(
        pieter.get(f"/api/v1/datasets/dutch-llm/{unique}/content", params={"version": 1}), 404
    )
    assert upload(pieter, "dutch-llm", unique, b"three").json()["number"] == 3


def blocks(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def flip(path: Path, at: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[at] ^= 0x01
    path.write_bytes(bytes(raw))


def test_an_altered_object_is_never_served_as_valid(
    client: Client, unique: str, server: LiveServer, tmp_path: Path
) -> None:
    pieter = client("pieter")
    register(pieter, "dutch-llm", unique)
    data = os.urandom(3 * MIB)
    sha = upload(pieter, "dutch-llm", unique, data).json()["sha256"]
    name = object_of(server.settings.database_url, sha)
    path = storage(server) / "objects" / name[:2] / name
    # Damage in the first chunk: refused before a byte is sent.
    flip(path, 100)
    broken = pieter.get(f"/api/v1/datasets/dutch-llm/{unique}/content")
    assert "fails its integrity check" in str(problem_of(broken, 503)["detail"])
    flip(path, 100)
    # Damage further on: the download breaks off, and the SDK keeps nothing.
    flip(path, path.stat().st_size - 10)
    dest = tmp_path / "pulled.bin"
    with (
        FabriekClient(server.url, demo_token("pieter").token) as sdk,
        pytest.raises(ApiUnreachable, match="lost the connection"),
    ):
        sdk.datasets.pull("dutch-llm", unique, dest)
    assert list(tmp_path.iterdir()) == []


def test_concurrent_uploads_and_a_rotation_lose_nothing(client: Client, unique: str) -> None:
    """Uploads of one organisation and a rotation of its key, all at once: every version
    gets its own number and stays readable (the organisation's key lock orders them)."""
    pieter = client("pieter")
    register(pieter, "dutch-llm", unique)
    delft = org_id(client, "Technische Universiteit Delft")
    bodies = [os.urandom(300_000 + i) for i in range(4)]

    def push(body: bytes) -> int:
        return upload(client("pieter"), "dutch-llm", unique, body).status_code

    def rotate() -> int:
        return client("pieter").post(f"/api/v1/organisation-keys/{delft}/rotate").status_code

    with ThreadPoolExecutor(5) as pool:
        pushed = [pool.submit(push, b) for b in bodies]
        rotated = pool.submit(rotate)
        assert [f.result() for f in pushed] == [201] * 4 and rotated.result() == 200
    found = versions(pieter, "dutch-llm", unique)
    assert sorted(v["number"] for v in found) == [1, 2, 3, 4]
    by_sha = {hashlib.sha256(b).hexdigest(): b for b in bodies}
    for v in found:
        back = pieter.get(
            f"/api/v1/datasets/dutch-llm/{unique}/content", params={"version": v["number"]}
        )
        assert back.content == by_sha[v["sha256"]]
