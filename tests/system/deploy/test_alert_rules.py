"""deploy/prometheus: the alert rules are valid (`promtool check rules`), their unit tests pass
(`promtool test rules`: each alert fires on a series made for it and stays quiet on healthy ones),
and every alert has such a test. `promtool_names` / `exported_names` are shared with
tests/integration/central/test_monitoring.py, which checks every named metric against a live /metrics.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.paths import REPO

ROOT = REPO
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "facegate-fleet.json"

_NOT_METRICS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right"}
_NOT_METRICS |= {"bool", "offset", "inf", "nan", "le"}
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("_count", "_sum", "_created"),
}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed: run scripts/ensure-services.sh (Debian package prometheus)")
    return path


def promql_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a Grafana query with $variables) selects."""
    expr = re.sub(r"\$\{[^}]*\}|\$\w+", "", expr)  # Grafana variables
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals (label values)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)  # label matchers, ranges
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][\w:]*", expr):
        rest = expr[match.end() :].lstrip()
        if not rest.startswith("(") and match.group() not in _NOT_METRICS:
            names.add(match.group())
    return names


def exported_names(metrics_text: str) -> set[str]:
    """Every series name a /metrics text can hold, including those of families with no sample yet."""
    names = set()
    for family in text_string_to_metric_families(metrics_text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ()))
    return names


def rule_expressions() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard_expressions(node: Any = None) -> list[str]:
    """Every PromQL expression of the dashboard: panel targets and template variable queries."""
    import json

    node = json.loads(DASHBOARD.read_text()) if node is None else node
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in {"expr", "definition"} and isinstance(value, str):
                found.append(re.sub(r"label_values\((\w+),\s*\w+\)", r"\1", value))
            else:
                found.extend(dashboard_expressions(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(dashboard_expressions(item))
    return found


def test_alert_rules_pass_promtool_check() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_unit_tests_pass() -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", RULE_TESTS.name],
        check=False,
        capture_output=True,
        text=True,
        cwd=RULE_TESTS.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_every_alert_has_a_firing_unit_test() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    alerts = {rule["alert"] for group in groups for rule in group["rules"]}
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {
        check["alertname"]
        for test in tests
        for check in test.get("alert_rule_test", [])
        if check["exp_alerts"]
    }
    assert alerts - fired == set()


def test_alert_rules_a_broken_rule_fails_its_unit_test(tmp_path: Path) -> None:
    broken = RULES.read_text().replace("(facegate_edge_up) == 0", "(facegate_edge_up) == 1")
    assert broken != RULES.read_text()
    (tmp_path / "alerts.yml").write_text(broken)
    (tmp_path / "alerts_test.yml").write_text(RULE_TESTS.read_text())
    result = subprocess.run(
        [promtool(), "test", "rules", "alerts_test.yml"],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "FacegateEdgeOffline" in result.stdout + result.stderr


def test_promql_names_finds_metrics_not_functions_labels_or_variables() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, route) (rate(a_bucket{route=~"$r"}[$__rate_interval])))'
        ' / on (site) group_left max(b_total offset 5m) > 1e3 and c{x="d"}'
    )
    assert promql_names(expr) == {"a_bucket", "b_total", "c"}


def test_dashboard_has_expressions() -> None:
    expressions = dashboard_expressions()
    assert len(expressions) >= 15
    assert all(promql_names(expr) for expr in expressions)
