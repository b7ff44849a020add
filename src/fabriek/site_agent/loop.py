"""The agent's loop: pull the desired state, apply it, report; again every interval.

An agent that is down, or a control plane that does not answer, delays changes and loses
none: the control plane keeps the desired state, and a report that could not be sent is
kept in the state folder and sent with the next one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

from fabriek.domain.site_state import AgentReport, DesiredState
from fabriek.site_agent.apply import AgentConfig, apply_state
from fabriek.site_agent.memory import write_atomically

UNSENT = "unsent_report.json"


class ControlPlane(Protocol):
    """What the agent asks of the control plane (`fabriek.sdk.site_agent.SiteAgentClient`)."""

    def desired_state(self) -> DesiredState: ...

    def report(self, report: AgentReport) -> None: ...


def run_once(control_plane: ControlPlane, config: AgentConfig) -> AgentReport:
    """One pass: pull, apply, report. Raises what the client raises when the control
    plane cannot be asked or told; what was applied is remembered either way."""
    state = control_plane.desired_state()
    report = with_unsent(apply_state(state, config), config.state_dir)
    path = config.state_dir / UNSENT
    write_atomically(path, json.dumps(report.to_json()), 0o600)
    control_plane.report(report)
    path.unlink(missing_ok=True)
    return report


def with_unsent(report: AgentReport, state_dir: Path) -> AgentReport:
    """`report` preceded by the changes of a report that was never delivered."""
    try:
        earlier = AgentReport.from_json(json.loads((state_dir / UNSENT).read_text()))
    except (OSError, ValueError):
        return report
    return AgentReport(
        generation=report.generation,
        applied=earlier.applied + report.applied,
        drift=earlier.drift + report.drift,
        errors=report.errors,  # what still fails is in the new report again
        details=report.details,
    )
