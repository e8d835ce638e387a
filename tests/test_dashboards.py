"""The Grafana dashboards: up to date with their generator, importable, explained, and
every query parses and names only metrics the README documents."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.test_alert_rules import RULES, promtool

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = sorted((ROOT / "dashboards").glob("*.json"))
VARIABLES = {"$cluster": ".*", "$group": ".*", "$topic": ".*"}
METRIC = re.compile(r"\b(lagwatch_[a-z_]+|process_[a-z_]+)\b")


def panels() -> list[tuple[str, dict[str, Any]]]:
    return [(path.name, panel) for path in DASHBOARDS
            for panel in json.loads(path.read_text())["panels"]]


def queries() -> list[str]:
    exprs = [t["expr"] for _, panel in panels() for t in panel["targets"]]
    for old, new in VARIABLES.items():
        exprs = [e.replace(old, new) for e in exprs]
    return exprs


def test_the_committed_dashboards_are_what_the_generator_writes() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "dashboards.py"), "--check"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert [p.name for p in DASHBOARDS] == [
        "lagwatch-cluster-health.json", "lagwatch-consumer-group.json",
        "lagwatch-dead-letter-queues.json", "lagwatch-overview.json",
        "lagwatch-self-monitoring.json", "lagwatch-topics.json"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_a_dashboard_imports_anywhere_and_explains_every_panel(path: Path) -> None:
    board = json.loads(path.read_text())
    variables = [v["name"] for v in board["templating"]["list"]]
    assert variables[:2] == ["datasource", "cluster"]
    # Grafana 10.4's schema, as the SDK writes it: Grafana 10 and 11 migrate it on import
    assert board["schemaVersion"] == 36 and board["uid"].startswith("lagwatch-")
    for panel in board["panels"]:
        assert len(panel["description"]) > 40, panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24


def test_the_drill_down_has_group_and_topic_variables() -> None:
    board = json.loads((ROOT / "dashboards" / "lagwatch-consumer-group.json").read_text())
    assert [v["name"] for v in board["templating"]["list"]] == [
        "datasource", "cluster", "group", "topic"]


def test_every_query_parses(tmp_path: Path) -> None:
    rules = {"groups": [{"name": "panels", "rules": [
        {"record": f"panel_query_{n}", "expr": expr} for n, expr in enumerate(queries())]}]}
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump(rules))
    check = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True,
                           text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def documented_metrics() -> set[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)`", section, re.MULTILINE))


def used_metrics(texts: list[str]) -> set[str]:
    names = set()
    for text in texts:
        for name in METRIC.findall(text):
            names.add(re.sub(r"_(bucket|sum|count)$", "", name))
    return names


def test_dashboards_and_alert_rules_use_only_documented_metrics() -> None:
    documented = documented_metrics() | {"process_resident_memory_bytes"}  # process_*
    rules = [r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    unknown = used_metrics(queries() + rules) - documented
    assert unknown == set()
