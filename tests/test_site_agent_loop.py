"""The agent's loop keeps what it could not report: a report the network dropped is sent
with the next one, so the operator sees every change even after an outage."""

from __future__ import annotations

from pathlib import Path

import pytest

from fabriek.domain.site_state import AgentReport, DesiredState
from fabriek.sdk import ApiUnreachable
from fabriek.site_agent.apply import AgentConfig
from fabriek.site_agent.loop import UNSENT, run_once


class NetworkDropsFirstReportDouble:
    """A test double of the control plane: it serves a desired state and loses the first
    report on the way (a network failing between pull and report cannot be had on demand
    here; the real client and server are tested in tests/slurm/test_site_agent_e2e.py)."""

    def __init__(self, state: DesiredState) -> None:
        self.state = state
        self.received: list[AgentReport] = []
        self.drop_next = True

    def desired_state(self) -> DesiredState:
        return self.state

    def report(self, report: AgentReport) -> None:
        if self.drop_next:
            self.drop_next = False
            raise ApiUnreachable("cannot reach Fabriek at http://127.0.0.1:9: connection refused")
        self.received.append(report)


def test_a_report_lost_on_the_way_is_sent_with_the_next(tmp_path: Path) -> None:
    ca_file = tmp_path / "ssh" / "fabriek_ca.pub"
    config = AgentConfig(
        state_dir=tmp_path / "state", posix=False, slurm=False, ssh_ca_file=ca_file
    )
    plane = NetworkDropsFirstReportDouble(
        DesiredState(site="s", cluster="s", ssh_ca_public_key="ssh-ed25519 AAAA ca")
    )

    with pytest.raises(ApiUnreachable):
        run_once(plane, config)
    assert ca_file.read_text() == "ssh-ed25519 AAAA ca\n"  # applied all the same
    assert (config.state_dir / UNSENT).stat().st_mode & 0o777 == 0o600

    report = run_once(plane, config)

    (delivered,) = plane.received
    assert delivered == report
    assert [(c.kind, c.name) for c in delivered.applied] == [("ssh", "TrustedUserCAKeys")]
    assert not (config.state_dir / UNSENT).exists()
    assert run_once(plane, config).applied == ()  # nothing new, nothing repeated


def test_a_file_the_agent_cannot_write_is_an_error_in_the_report(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    config = AgentConfig(
        state_dir=tmp_path / "state", posix=False, slurm=False, ssh_ca_file=blocker / "ca.pub"
    )
    plane = NetworkDropsFirstReportDouble(
        DesiredState(site="s", cluster="s", ssh_ca_public_key="ssh-ed25519 AAAA ca")
    )
    plane.drop_next = False

    report = run_once(plane, config)

    (error,) = report.errors
    assert (error.kind, error.name) == ("ssh", "TrustedUserCAKeys")
    assert str(blocker) in error.detail and report.applied == ()
