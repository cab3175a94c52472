"""The alert rules we ship (``deploy/prometheus/alerts.yml``): Prometheus's own ``promtool``
(Debian's package, installed by ``make test``) accepts them and proves each alert fires on a
sample series and stays quiet on another (``alerts_test.yml``); every metric they name is one
the services export, with the labels they use (``tests/support/exported_metrics.py``); every alert
has its runbook line in ``docs/operations.md``."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.support.exported_metrics import query_problems

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus"


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: `make test` installs it (Debian's package prometheus)"
    return found


def alerts() -> list[dict[str, object]]:
    groups = yaml.safe_load((RULES / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_accepts_the_rules() -> None:
    out = subprocess.run(
        [promtool(), "check", "rules", "alerts.yml"], cwd=RULES, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in out.stdout


def test_each_alert_fires_on_its_sample_series() -> None:
    out = subprocess.run(
        [promtool(), "test", "rules", "alerts_test.yml"], cwd=RULES, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    tested = set(re.findall(r"alertname: (\w+)", (RULES / "alerts_test.yml").read_text()))
    assert tested == {str(rule["alert"]) for rule in alerts()}  # every alert has a test


def test_the_rules_name_only_metrics_the_services_export() -> None:
    """Every series a rule selects is one a service exports (or Prometheus writes, ``up``), and
    every label it filters, groups or matches by is one that series carries."""
    problems = {str(rule["alert"]): query_problems(str(rule["expr"])) for rule in alerts()}
    assert {alert: found for alert, found in problems.items() if found} == {}


def test_each_alert_has_a_runbook_line() -> None:
    operations = (ROOT / "docs" / "operations.md").read_text()
    section = operations.split("\n## Alerts\n", 1)
    assert len(section) == 2, "docs/operations.md has no '## Alerts' section"
    for rule in alerts():
        assert f"**{rule['alert']}**" in section[1].split("\n## ", 1)[0], (
            f"no runbook line for {rule['alert']}"
        )
