"""GET /api/v1/metrics (JSON) and GET /metrics (Prometheus text)."""

import pytest

pytestmark = pytest.mark.django_db


def test_json_metrics_count_routes_per_strategy_and_service(client_api, fleet):
    for strategy in ("semantic", "semantic", "power_of_two"):
        client_api.post("/api/v1/route", {"data": {}, "routing_strategy": strategy}, format="json")
    client_api.post("/api/v1/route", {"data": {"capabilities": ["nothing"]}}, format="json")

    body = client_api.get("/api/v1/metrics").json()

    assert body["totals"]["routed"] == 4
    assert body["totals"]["no_eligible"] == 1
    assert body["per_strategy"]["semantic"] == 2
    assert body["per_strategy"]["power_of_two"] == 1
    assert sum(s["routed"] for s in body["per_service"].values()) == 3
    assert set(body["per_service"]) == {s.service_id for s in fleet}
    assert 0 < body["latency_ms"]["p50"] <= body["latency_ms"]["p99"]
    assert 0.0 <= body["load_balance_score"] <= 1.0


def test_prometheus_text_has_the_routing_series(client_api, fleet, client):
    client_api.post("/api/v1/route", {"data": {}, "routing_strategy": "semantic"}, format="json")

    text = client.get("/metrics").content.decode()

    for series in (
        "moe_routing_total",
        "moe_expert_usage_total",
        "moe_routing_latency_ms_bucket",
        "moe_load_balance_score",
    ):
        assert series in text
    assert 'moe_routing_total{outcome="routed",strategy="semantic"}' in text
    # one request in flight on one of four healthy services: Jain's index is 1/4
    assert "moe_load_balance_score 0.25" in text


def test_with_a_metrics_token_a_scrape_must_carry_it(fleet, client, settings):
    settings.MOE_METRICS_TOKEN = "scrape-secret-1234"

    none = client.get("/metrics")
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret-12345")
    right = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret-1234")

    for refused in (none, wrong):
        assert refused.status_code == 401
        assert refused["WWW-Authenticate"] == "Bearer"
        assert refused.json()["error"]["code"] == "not_authenticated"
    assert right.status_code == 200
    assert "moe_routing_total" in right.content.decode()


def test_without_a_metrics_token_metrics_ask_for_nothing(fleet, client, settings):
    settings.MOE_METRICS_TOKEN = ""

    assert client.get("/metrics").status_code == 200
