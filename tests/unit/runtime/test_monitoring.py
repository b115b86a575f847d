"""infra/monitoring: the alert rules pass `promtool check rules`, and the dashboard and the rules query only metrics
that runtime/metrics.py defines (a renamed metric would leave a panel empty and an alert silent)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from runtime.metrics import exported_names

MONITORING = Path(__file__).resolve().parents[3] / "infra" / "monitoring"
ALERTS = MONITORING / "alerts.yml"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "mmhub.json"
METRIC = re.compile(r"\bmmhub_[a-z0-9_]+")


def _promtool() -> str:
    found = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)
    if found is None:
        if os.environ.get("MMHUB_REQUIRE_PROMTOOL") == "1":
            pytest.fail("promtool is missing: run `bash infra/dev.sh promtool` (Debian's prometheus package)")
        pytest.skip("promtool is missing: `bash infra/dev.sh promtool` installs it (make test does)")
    return found


def _rules() -> list[dict[str, object]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def _dashboard_queries() -> list[str]:
    return [target["expr"] for panel in json.loads(DASHBOARD.read_text())["panels"] for target in panel["targets"]]


def test_promtool_accepts_the_alert_rules() -> None:
    checked = subprocess.run([_promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in checked.stdout


def test_promtool_refuses_a_broken_rule(tmp_path: Path) -> None:
    """The check above can fail: a rule with a syntax error is refused."""
    broken = tmp_path / "broken.yml"
    broken.write_text("groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: sum(rate(mmhub_events_total[5m]\n")
    checked = subprocess.run([_promtool(), "check", "rules", str(broken)], capture_output=True, text=True)
    assert checked.returncode != 0


def test_the_promised_alerts_exist() -> None:
    exprs = {str(rule["alert"]): str(rule["expr"]) for rule in _rules()}
    assert "mmhub_consumer_lag" in exprs["MmhubConsumerLagGrowing"]
    assert "mmhub_dead_lettered_total" in exprs["MmhubDeadLetterRate"]
    assert "mmhub_parked_oldest_age_seconds" in exprs["MmhubParkedTooLong"]
    assert "mmhub_webhook_dead_total" in exprs["MmhubWebhookDeadLetters"]
    assert "mmhub_gc_pause_seconds_sum" in exprs["MmhubCollectorHoldsTheProcess"]


def test_the_dashboard_and_the_rules_use_only_metrics_the_code_defines() -> None:
    queries = _dashboard_queries() + [str(rule["expr"]) for rule in _rules()]
    used = {name for query in queries for name in METRIC.findall(query)}
    assert used - exported_names() == set()
    # and every metric the code defines is on the dashboard
    families = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in exported_names()}
    assert {f for f in families if not any(u.startswith(f) for u in used)} == set()


def test_the_dashboards_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses each panel's query as the expression of a recording rule."""
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"mmhub:panel_{i}", "expr": query} for i, query in enumerate(_dashboard_queries())
    ]}]}  # fmt: skip
    path = tmp_path / "dashboard.yml"
    path.write_text(yaml.safe_dump(rules))
    checked = subprocess.run([_promtool(), "check", "rules", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
