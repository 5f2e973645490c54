"""POST /api/v1/route and /route/batch: the happy paths and the response contract."""

import pytest

from routing.core.strategies import STRATEGY_NAMES

pytestmark = pytest.mark.django_db


def test_route_with_only_data_uses_the_default_strategy(client_api, fleet, settings):
    response = client_api.post("/api/v1/route", {"data": {}}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["requested_strategy"] == settings.MOE_DEFAULT_STRATEGY
    assert body["routing_strategy"] in STRATEGY_NAMES
    assert body["routing_strategy"] != "adaptive"  # adaptive names the strategy it chose
    assert len(body["selected_services"]) >= 1
    assert set(body["scores"]) >= set(body["selected_services"])
    assert 0.0 <= body["confidence"] <= 1.0
    assert body["reason"]
    assert body["latency_ms"] >= 0
    assert body["request_id"]


@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
def test_every_strategy_routes_to_a_registered_service(client_api, fleet, strategy):
    payload = {
        "data": {"type": "inference", "priority": 0.8, "complexity": 0.5, "key": "user-42"},
        "routing_strategy": strategy,
    }

    response = client_api.post("/api/v1/route", payload, format="json")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert set(body["selected_services"]) <= {s.service_id for s in fleet}
    assert body["requested_strategy"] == strategy


def test_required_capability_limits_the_choice(client_api, fleet):
    payload = {"data": {"capabilities": ["processing"]}, "routing_strategy": "power_of_two"}

    for _ in range(20):
        response = client_api.post("/api/v1/route", payload, format="json")
        assert response.json()["selected_services"] == ["ana-a"]


def test_top_k_returns_k_distinct_services(client_api, fleet):
    response = client_api.post(
        "/api/v1/route", {"data": {}, "routing_strategy": "top_k", "top_k": 3}, format="json"
    )

    selected = response.json()["selected_services"]
    assert len(selected) == 3
    assert len(set(selected)) == 3


def test_nothing_eligible_is_a_503_naming_the_reason(client_api, fleet):
    response = client_api.post(
        "/api/v1/route", {"data": {"capabilities": ["quantum"]}}, format="json"
    )

    assert response.status_code == 503
    body = response.json()
    assert body["error"]["code"] == "no_eligible_service"
    assert body["selected_services"] == []


def test_empty_fleet_is_a_503(client_api, db):
    response = client_api.post("/api/v1/route", {"data": {}}, format="json")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "no_eligible_service"


def test_batch_routes_every_item_in_order(client_api, fleet):
    requests = [{"type": "inference", "key": f"k{i}"} for i in range(50)]
    requests.append({"capabilities": ["storage"]})

    response = client_api.post(
        "/api/v1/route/batch",
        {"requests": requests, "routing_strategy": "consistent_hash"},
        format="json",
    )

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 51
    assert len({r["request_id"] for r in body["results"]}) == 51
    assert body["results"][-1]["selected_services"] == ["store-a"]


def test_consistent_hash_keeps_a_key_on_one_service(client_api, fleet):
    payload = {"data": {"key": "user-7"}, "routing_strategy": "consistent_hash"}

    chosen = set()
    for _ in range(10):
        routed = client_api.post("/api/v1/route", payload, format="json").json()
        chosen.add(tuple(routed["selected_services"]))
        service = routed["selected_services"][0]
        client_api.post(
            f"/api/v1/route/{routed['request_id']}/outcome",
            {"service_id": service, "success": True},
            format="json",
        )

    assert len(chosen) == 1


def test_a_drained_service_is_not_selected(client_api, fleet):
    from registry.services import set_status

    set_status(["inf-a", "inf-b", "ana-a"], "draining")

    for strategy in STRATEGY_NAMES:
        response = client_api.post(
            "/api/v1/route", {"data": {}, "routing_strategy": strategy}, format="json"
        )
        assert response.json()["selected_services"] == ["store-a"], strategy


def test_demo_compares_every_strategy(client_api, fleet):
    response = client_api.get("/api/v1/demo/smart_routing?complexity=complex")

    assert response.status_code == 200
    body = response.json()
    assert [row["strategy"] for row in body["comparison"]] == list(STRATEGY_NAMES)
    for row in body["comparison"]:
        assert sum(row["distribution"].values()) + row["unrouted"] == body["requests"]
        # the concrete strategies count the routed requests only (not the unrouted ones)
        assert sum(row["concrete_strategies"].values()) + row["unrouted"] == body["requests"]
    assert any(row["unrouted"] for row in body["comparison"])  # the fleet cannot serve them all


def test_demo_refuses_an_unknown_complexity(client_api, fleet):
    response = client_api.get("/api/v1/demo/smart_routing?complexity=extreme")

    assert response.status_code == 400
    assert "complexity" in response.json()["error"]["fields"]
