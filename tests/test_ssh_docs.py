"""docs/sites.md shows the sshd_config lines the login-node tests run sshd with, exactly."""

from __future__ import annotations

from pathlib import Path

from tests.ssh_login import sshd_config_lines

ROOT = Path(__file__).resolve().parent.parent


def test_the_documented_sshd_lines_are_the_tested_ones() -> None:
    doc = (ROOT / "docs" / "sites.md").read_text()
    section = doc.split("## SSH access", 1)[1].split("\n## ", 1)[0]
    block = section[section.index("```\nTrustedUserCAKeys") + 4 :].split("\n```", 1)[0]
    documented = block.strip().splitlines()
    tested = sshd_config_lines(
        port=22, folder=Path("/etc/ssh"), url="https://fabriek.example.org", site="eindhoven",
        token_file=Path("/etc/fabriek/agent-token"), fabriek=Path("/usr/local/bin/fabriek"),
    )  # fmt: skip
    start = next(i for i, line in enumerate(tested) if line.startswith("TrustedUserCAKeys"))
    assert documented == tested[start:]
