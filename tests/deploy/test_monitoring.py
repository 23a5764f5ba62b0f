"""deploy/prometheus/alerts.yaml and deploy/grafana/tessera.json (issue 19).

promtool is not available here: the rule file is parsed with PyYAML and held to the shape
Prometheus loads (groups of named rules, each an alert with an expression, a duration, a
severity and a summary), and every metric an expression or a dashboard query names must be
one that Tessera's /metrics exports, read from a real scrape after every counter has a value.
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path

import pytest
import yaml
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from apps.core.events import EventType, emit
from apps.core.health import HEARTBEAT_KEY
from apps.core.metrics import EVENT_COUNTERS

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "tessera.json"
PROMETHEUS_OWN = {"up"}  # series Prometheus itself writes for each target
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
METRIC = re.compile(r"\b(tessera_[a-z0-9_]+)")


@pytest.fixture
def exported(db: None, settings, redis_client, tmp_path: Path) -> set[str]:
    """Every series name of a real scrape, with each mapped event emitted once."""
    token = secrets.token_urlsafe(32)
    settings.METRICS_TOKEN_FILE = tmp_path / "token"
    settings.METRICS_TOKEN_FILE.write_text(token)
    for event_type in EVENT_COUNTERS:
        emit(EventType(event_type), metadata={"grant_type": "authorization_code"})
    redis_client.set(HEARTBEAT_KEY, "1")
    client = Client()
    assert client.get("/healthz").status_code == 200
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    names: set[str] = set()
    for family in text_string_to_metric_families(response.content.decode()):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names


def _metrics_in(expression: str) -> set[str]:
    return set(METRIC.findall(expression))


def _balanced(expression: str) -> bool:
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    for char in re.sub(r'"[^"]*"', '""', expression):
        if char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return False
    return not stack


def rule_problems(document: object, exported: set[str]) -> list[str]:
    if not isinstance(document, dict) or set(document) != {"groups"}:
        return ["the file must be a map with `groups` only"]
    problems: list[str] = []
    names: set[str] = set()
    for group in document["groups"]:
        if set(group) - {"name", "interval", "rules"} or not group.get("rules"):
            problems.append(f"group {group.get('name')}: unknown fields or no rules")
        for rule in group.get("rules", []):
            alert = rule.get("alert", "?")
            allowed = {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}
            if set(rule) - allowed:
                problems.append(f"{alert}: unknown fields {sorted(set(rule) - allowed)}")
            if alert in names:
                problems.append(f"{alert}: two rules with this name")
            names.add(alert)
            expr = rule.get("expr")
            if not isinstance(expr, str) or not _balanced(expr):
                problems.append(f"{alert}: expr missing or unbalanced")
                continue
            used = _metrics_in(expr)
            if not used and not PROMETHEUS_OWN & set(re.findall(r"\b([a-z_]+)\{", expr)):
                problems.append(f"{alert}: names no metric")
            problems += [f"{alert}: {name} is not exported" for name in used - exported]
            if "for" in rule and not DURATION.match(str(rule["for"])):
                problems.append(f"{alert}: `for` is not a duration")
            if rule.get("labels", {}).get("severity") not in ("warning", "critical"):
                problems.append(f"{alert}: severity must be warning or critical")
            if not rule.get("annotations", {}).get("summary"):
                problems.append(f"{alert}: no summary")
    return problems


def dashboard_queries(dashboard: dict) -> list[tuple[str, str]]:
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            queries.append((panel["title"], target["expr"]))
    return queries


def test_every_alert_rule_is_well_formed_and_names_exported_metrics(exported: set[str]) -> None:
    document = yaml.safe_load(ALERTS.read_text())
    assert rule_problems(document, exported) == []
    alerts = {rule["alert"] for group in document["groups"] for rule in group["rules"]}
    assert len(alerts) >= 10


def test_the_rule_check_finds_what_is_wrong(exported: set[str]) -> None:
    broken = {
        "groups": [
            {
                "name": "g",
                "rules": [
                    {"alert": "A", "expr": "tessera_no_such_metric > 1", "for": "5 minutes",
                     "labels": {"severity": "page"}, "annotations": {"summary": "s"}},
                    {"alert": "A", "expr": "sum(rate(tessera_events_total[5m])",
                     "annotations": {}},
                ],
            }
        ]
    }  # fmt: skip
    assert rule_problems(broken, exported) == [
        "A: tessera_no_such_metric is not exported",
        "A: `for` is not a duration",
        "A: severity must be warning or critical",
        "A: two rules with this name",
        "A: expr missing or unbalanced",
    ]


def test_every_dashboard_query_names_exported_metrics(exported: set[str]) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"]
    assert dashboard["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    queries = dashboard_queries(dashboard)
    assert len(queries) >= 15
    problems = []
    for title, expr in queries:
        used = _metrics_in(expr)
        if not used or not _balanced(expr):
            problems.append(f"{title}: {expr}")
        problems += [f"{title}: {name} is not exported" for name in used - exported]
    assert problems == []
    # Every counter the issue names is on the dashboard.
    shown = {name for _, expr in queries for name in _metrics_in(expr)}
    assert {
        "tessera_http_requests_total", "tessera_tokens_issued_total", "tessera_sign_ins_total",
        "tessera_mfa_total", "tessera_federation_total", "tessera_lockouts_total",
        "tessera_threat_actions_total", "tessera_revocation_mirror_lag_seconds",
        "tessera_audit_shipping_lag_seconds", "tessera_celery_queue_length",
    } <= shown  # fmt: skip
