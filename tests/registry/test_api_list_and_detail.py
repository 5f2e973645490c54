"""GET /api/v1/services and /api/v1/services/<id>: any authenticated user, with live state."""

import pytest

from registry.models import Capability, Service

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet():
    analysis = Capability.objects.create(name="analysis")
    vision = Capability.objects.create(name="vision")
    a = Service.objects.create(
        service_id="svc-a",
        service_type="analysis",
        endpoint="http://127.0.0.1:8101",
        max_capacity=10,
    )
    a.capabilities.set([analysis])
    b = Service.objects.create(
        service_id="svc-b",
        service_type="inference",
        endpoint="http://127.0.0.1:8102",
        max_capacity=4,
        status="draining",
        health="healthy",
        metadata={"gpu": "L4"},
    )
    b.capabilities.set([analysis, vision])
    Service.objects.create(
        service_id="svc-c",
        service_type="storage",
        endpoint="http://127.0.0.1:8103",
        max_capacity=100,
        status="disabled",
    )


@pytest.fixture
def live_calls(monkeypatch):
    """Replace routing.runtime.live_states; record each call's ids."""
    calls = []

    def fake_live_states(service_ids):
        calls.append(list(service_ids))
        return {
            sid: {
                "in_flight": 2,
                "ewma_latency_ms": 12.5,
                "error_rate": 0.1,
                "breaker_state": "half_open",
                "anomaly": 0.3,
            }
            for sid in service_ids
        }

    monkeypatch.setattr("routing.runtime.live_states", fake_live_states)
    return calls


@pytest.mark.parametrize("persona", ["operator_api", "staff_api", "client_api"])
def test_any_authenticated_user_lists_services(request, fleet, persona):
    api = request.getfixturevalue(persona)
    response = api.get("/api/v1/services")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert [s["service_id"] for s in body["results"]] == ["svc-a", "svc-b", "svc-c"]


@pytest.mark.parametrize("persona", ["operator_api", "staff_api", "client_api"])
def test_any_authenticated_user_reads_one_service(request, fleet, persona):
    api = request.getfixturevalue(persona)
    response = api.get("/api/v1/services/svc-b")
    assert response.status_code == 200
    body = response.json()
    assert body["service_id"] == "svc-b"
    assert body["capabilities"] == ["analysis", "vision"]
    assert (body["status"], body["health"], body["metadata"]) == (
        "draining",
        "healthy",
        {"gpu": "L4"},
    )


@pytest.mark.parametrize("url", ["/api/v1/services", "/api/v1/services/svc-a"])
def test_anonymous_gets_401(anon_api, fleet, url):
    response = anon_api.get(url)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_an_unknown_service_is_a_404(client_api):
    response = client_api.get("/api/v1/services/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_each_service_carries_its_live_state_and_load(client_api, fleet, live_calls):
    body = client_api.get("/api/v1/services/svc-b").json()
    assert body["live"] == {
        "load": 0.5,  # 2 in flight / capacity 4
        "in_flight": 2,
        "ewma_latency_ms": 12.5,
        "error_rate": 0.1,
        "breaker_state": "half_open",
        "breaker_allows": True,
        "cooling_down": False,
        "anomaly": 0.3,
    }


def test_the_list_asks_for_live_state_once_for_all_services(client_api, fleet, live_calls):
    body = client_api.get("/api/v1/services").json()
    assert live_calls == [["svc-a", "svc-b", "svc-c"]]
    assert [s["live"]["load"] for s in body["results"]] == [0.2, 0.5, 0.02]


def test_the_list_costs_the_same_queries_for_any_fleet_size(
    client_api, fleet, django_assert_max_num_queries
):
    for i in range(20):
        Service.objects.create(
            service_id=f"extra-{i}",
            service_type="custom",
            endpoint="http://127.0.0.1:8104",
            max_capacity=1,
        ).capabilities.add(Capability.objects.get(name="analysis"))
    # user + services + prefetched capabilities (+ throttle-free, session-free JWT auth)
    with django_assert_max_num_queries(3):
        assert client_api.get("/api/v1/services").json()["count"] == 23


@pytest.mark.parametrize(
    "query, expected",
    [
        ("status=draining", ["svc-b"]),
        ("status=active", ["svc-a"]),
        ("service_type=storage", ["svc-c"]),
        ("capability=analysis", ["svc-a", "svc-b"]),
        ("capability=vision&status=draining", ["svc-b"]),
        ("capability=unknown", []),
    ],
)
def test_the_list_filters(client_api, fleet, query, expected):
    body = client_api.get(f"/api/v1/services?{query}").json()
    assert [s["service_id"] for s in body["results"]] == expected
    assert body["count"] == len(expected)


@pytest.mark.parametrize(
    "query, field", [("status=paused", "status"), ("service_type=quantum", "service_type")]
)
def test_a_bad_filter_is_a_400_naming_it(client_api, fleet, query, field):
    response = client_api.get(f"/api/v1/services?{query}")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_clients_may_not_write_through_the_detail_url(client_api, fleet):
    assert client_api.put("/api/v1/services/svc-a", {}, format="json").status_code == 403


def test_operators_get_405_for_methods_the_detail_url_lacks(operator_api, fleet):
    response = operator_api.put("/api/v1/services/svc-a", {}, format="json")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
