"""The operator's dashboard and alert examples stay true: the rules pass `promtool check
rules`, the dashboard is valid JSON whose panels all take their data source from a
variable, and every Fabriek metric either names is one the server exposes."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fabriek.api.app import create_app
from fabriek.settings import Settings
from tests.promtool_install import PromtoolMissing, ensure_promtool
from tests.servers import prepare, throwaway_database

DOCS = Path(__file__).resolve().parent.parent / "docs"
DASHBOARD = DOCS / "grafana" / "fabriek.json"
ALERTS = DOCS / "alerts.yml"
NAME = re.compile(r"\bfabriek_[a-z0-9_]+")
SUFFIXES = ("_bucket", "_count", "_sum")


@pytest.fixture(scope="module")
def exposed(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The metric families a server exposes (with no job yet: every family still says its
    name in its `# TYPE` line)."""
    tmp = tmp_path_factory.mktemp("exposed")
    with throwaway_database("sqlite", tmp) as url:
        prepare(url)
        app = create_app(Settings(database_url=url, state_dir=tmp / "state"))
        # As on the leader after a cycle: the families only a dispatching server has.
        app.state.context.dispatcher.metrics.cycle_done(0.01)
        text = app.state.metrics.exposition().decode()
        app.state.context.engine.dispose()
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


def _exprs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in {"expr", "definition"} and isinstance(value, str):
                yield value
            else:
                yield from _exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _exprs(item)


def _family(name: str, exposed: set[str]) -> bool:
    return name in exposed or any(
        name.endswith(s) and name.removesuffix(s) in exposed for s in SUFFIXES
    )


def test_the_alert_rules_pass_promtool() -> None:
    try:
        promtool = ensure_promtool()
    except PromtoolMissing as exc:
        pytest.skip(str(exc))
    checked = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_the_alerts_cover_a_site_down_a_stalled_dispatcher_and_growing_queues() -> None:
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    exprs = " ".join(r["expr"] for r in rules)
    for metric in [
        "fabriek_site_up",
        "fabriek_dispatch_lag_seconds",
        "fabriek_dispatch_last_cycle_timestamp_seconds",
        "fabriek_mail_oldest_queued_age_seconds",
        "fabriek_harvest_lag_seconds",
    ]:
        assert metric in exprs, metric
    assert all(r.get("for") for r in rules)


def test_the_dashboard_takes_its_data_source_from_a_variable() -> None:
    board = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len(panels) >= 20
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))


def test_every_metric_the_docs_name_is_exposed(exposed: set[str]) -> None:
    board = json.loads(DASHBOARD.read_text())
    named = {n for e in _exprs(board) for n in NAME.findall(e)}
    named |= set(NAME.findall(ALERTS.read_text()))
    named |= set(NAME.findall((DOCS / "operations.md").read_text()))
    missing = sorted(n for n in named if not _family(n, exposed))
    assert not missing, missing
    # ... and the dashboard shows every family the factory exposes.
    shown = {n.removesuffix(s) for n in named for s in (*SUFFIXES, "") if n.endswith(s)}
    unshown = [e for e in exposed if e.startswith("fabriek_") and not e.endswith("_created")]
    assert not sorted(e for e in unshown if e not in shown)
