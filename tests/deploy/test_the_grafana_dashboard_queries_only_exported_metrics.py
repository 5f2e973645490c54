"""docs/grafana/moe-router.json: valid JSON that Grafana imports, and every query names series
and labels that GET /metrics really exports (scraped after a routed request and its outcome)."""

import json
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docs" / "grafana" / "moe-router.json"
# The metrics the design names, under the names Prometheus sees (counters gain _total).
REQUIRED = {
    "moe_routing_total",
    "moe_expert_usage_total",
    "moe_routing_latency_ms_bucket",
    "moe_load_balance_score",
    "moe_outcomes_total",
    "moe_outcome_reward_total",
}
METRIC = re.compile(r"\b(?:moe|django)_[a-z0-9_]+")
SELECTOR = re.compile(r"\b((?:moe|django)_[a-z0-9_]+)\{([^}]*)\}")
GROUPING = re.compile(r"\bby \(([^)]*)\)")


def _queries(dashboard: dict) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return exprs


def _exported(text: str) -> dict[str, set[str]]:
    """series name -> label names seen on it, from Prometheus text."""
    series: dict[str, set[str]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition("{")
        name = name.split(" ")[0]
        labels = set(re.findall(r'([a-zA-Z_]+)="', rest.split("}")[0])) if rest else set()
        series.setdefault(name, set()).update(labels)
    return series


@pytest.fixture
def exported(client_api, client) -> dict[str, set[str]]:
    from registry.services import register_service

    register_service(
        {
            "service_id": "svc-a",
            "service_type": "inference",
            "endpoint": "http://127.0.0.1:9101",
            "capabilities": ["analysis"],
            "max_capacity": 10,
        }
    )
    routed = client_api.post("/api/v1/route", {"data": {"type": "inference"}}, format="json")
    assert routed.status_code == 200, routed.content
    client_api.post("/api/v1/route", {"data": {"type": "nothing-serves"}}, format="json")
    body = routed.json()
    outcome = {"service_id": "svc-a", "success": True, "latency_ms": 12.0, "status_code": 200}
    reported = client_api.post(
        f"/api/v1/route/{body['request_id']}/outcome", outcome, format="json"
    )
    assert reported.status_code == 200, reported.content
    return _exported(client.get("/metrics").content.decode())


def test_the_dashboard_is_an_importable_grafana_dashboard():
    dashboard = json.loads(DASHBOARD.read_text())

    assert dashboard["title"] == "moe-router" and dashboard["uid"]
    assert dashboard["panels"] and dashboard["schemaVersion"] >= 30
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])


def test_every_query_names_series_and_labels_that_metrics_exports(exported):
    dashboard = json.loads(DASHBOARD.read_text())
    named: set[str] = set()

    for expr in _queries(dashboard):
        metrics = set(METRIC.findall(expr))
        assert metrics, expr
        named |= metrics
        for metric in metrics:
            assert metric in exported, f"{metric} (in {expr}) is not exported"
        for metric, matchers in SELECTOR.findall(expr):
            for label in re.findall(r"([a-zA-Z_]+)\s*=~?", matchers):
                assert label in exported[metric], f"{metric} has no label {label!r}"
        for group in GROUPING.findall(expr):
            for label in (g.strip() for g in group.split(",")):
                assert label == "le" or any(label in exported[m] for m in metrics), (label, expr)

    assert named >= REQUIRED
