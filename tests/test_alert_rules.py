"""The Prometheus alert rules in alerts/: promtool's own checks and unit tests pass, and
every status with a severity and every finding kind the README lists has a rule."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from lagwatch.status import SEVERITY, Severity

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "alerts" / "lagwatch.rules.yml"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool not found: install Prometheus (Debian: apt-get install "
                    "prometheus); .ci/run does")
    return found


def test_promtool_checks_the_rules_and_their_unit_tests_pass() -> None:
    check = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True,
                           text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run([promtool(), "test", "rules", "lagwatch.test.yml"],
                          cwd=ROOT / "alerts" / "tests", capture_output=True, text=True,
                          check=False)
    assert test.returncode == 0, test.stdout + test.stderr
    assert "SUCCESS" in test.stdout


def rule_exprs() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def readme_finding_kinds() -> set[tuple[str, str]]:
    """(scope, kind) of every row of the README's Findings tables."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Findings\n", 1)[1].split("\n## ", 1)[0]
    kinds = set()
    for match in re.finditer(r"^\| `([a-z_]+)` \| ([a-z ]+?) \|", section, re.MULTILINE):
        kind, second = match.groups()
        kinds.add((second if second in {"group", "cluster"} else "cluster", kind))
    return kinds


def test_every_status_with_a_severity_has_a_rule() -> None:
    exprs = rule_exprs()
    missing = [s.value for s, sev in SEVERITY.items() if sev is not Severity.NONE
               and not any(f'lagwatch_group_status{{status="{s.value}"}}' in e for e in exprs)]
    assert missing == []


def test_every_finding_kind_in_the_readme_has_a_rule() -> None:
    kinds = readme_finding_kinds()
    assert ("group", "rebalancing") in kinds and ("cluster", "dlq_unconsumed") in kinds
    exprs = rule_exprs()
    missing = sorted(f"{scope}:{kind}" for scope, kind in kinds
                     if not any(f'lagwatch_{scope}_findings{{kind="{kind}"' in e for e in exprs))
    assert missing == []
