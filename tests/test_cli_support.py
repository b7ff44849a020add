"""`fabriek support`: a ticket opened, answered and reported on from the command line, through
real HTTP; bad input in one line with a non-zero exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from fabriek.domain.calendar import AMSTERDAM
from fabriek.services.demo.seed import demo_token
from tests.jobs_helpers import py, submit, wait_for
from tests.servers import LiveServer
from tests.test_cli import one_line_error

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def support(
    server: LiveServer, username: str, *args: str, stdin: str = "", check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "FABRIEK_URL": server.url,
           "FABRIEK_TOKEN": demo_token(username).token}  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "fabriek.main", "support", *args],
        input=stdin, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_a_ticket_from_the_command_line(server: LiveServer, unique: str, tmp_path: Path) -> None:
    sanne = httpx.Client(base_url=server.url, timeout=30,
                         headers={"Authorization": f"Bearer {demo_token('sanne').token}"})  # fmt: skip
    with sanne:
        job = submit(sanne, project="photonic-inspect", time_limit="1m", command=py(
            "print('wafer 17: segfault'); raise SystemExit(139)"))  # fmt: skip
        wait_for(sanne, job["id"])
    opened = support(server, "sanne", "new", "--category", "jobs", "--about", f"job:{job['id']}",
                     "--subject", f"{unique} crashes", "--body", "-", "--share-context",
                     stdin="It crashes on wafer 17.\n").stdout  # fmt: skip
    assert "at AI-hub Brainport; first answer due by" in opened
    reference = opened.split("Opened ")[1].split(" ")[0]
    listed = json.loads(support(server, "sanne", "ls", "--json", "--mine").stdout)
    assert reference in [t["reference"] for t in listed]

    note = tmp_path / "note.md"
    note.write_text("Segfault in the vendor library; known.\n")
    support(server, "hanna", "reply", reference, "--body", str(note), "--internal")
    support(server, "hanna", "reply", reference, "--status", "waiting-for-user",
            stdin="Which driver version do you use?")  # fmt: skip
    log = tmp_path / "driver.log"
    log.write_text("driver 550.54\n")
    support(server, "sanne", "attach", reference, str(log))
    shown = support(server, "sanne", "show", reference).stdout
    assert "job" in shown and "failed (exit code 139)" in shown and "wafer 17: segfault" in shown
    assert "Which driver version do you use?" in shown and "driver.log" in shown
    assert "vendor library" not in shown  # the internal note is the staff's
    as_staff = json.loads(support(server, "hanna", "show", reference, "--json").stdout)
    assert "Segfault in the vendor library; known." in [m["body"] for m in as_staff["messages"]]

    saved = tmp_path / "back.log"
    attachment = as_staff["attachments"][0]["id"]
    support(server, "hanna", "download", reference, str(attachment), "-o", str(saved))
    assert saved.read_text() == "driver 550.54\n"

    month = f"{datetime.now(UTC).astimezone(AMSTERDAM):%Y-%m}"
    report = json.loads(support(server, "hanna", "report", "--hub", "brainport", "--month", month,
                                "--json").stdout)  # fmt: skip
    assert report["hub"] == "brainport" and report["tickets"] >= 1
    assert (
        f"{reference} is closed" in support(server, "sanne", "status", reference, "closed").stdout
    )


def test_bad_input_is_one_line(server: LiveServer, tmp_path: Path) -> None:
    line = one_line_error(support(server, "mo", "new", "--category", "jobs", "--subject", "Help",
                                  "--about", "job:999999999", check=False), 1)  # fmt: skip
    assert "job 999999999 does not exist or is not visible to you" in line
    line = one_line_error(support(server, "mo", "new", "--category", "billing", "--subject", "Help",
                                  check=False), 2)  # fmt: skip
    assert "no category 'billing'" in line
    assert "is not a ticket" in one_line_error(support(server, "mo", "show", "X1", check=False), 2)
    program = tmp_path / "fix.exe"
    program.write_bytes(b"MZ\x90\x00")
    opened = support(server, "mo", "new", "--category", "other", "--subject", "Files",
                     "--yes").stdout  # fmt: skip
    reference = opened.split("Opened ")[1].split(" ")[0]
    line = one_line_error(support(server, "mo", "attach", reference, str(program), check=False), 1)
    assert "are not accepted; allowed:" in line
