"""rebalance_weights moves weights toward capacity x speed x reliability, and says what changed."""

import pytest
from django.conf import settings

from registry.models import Service
from registry.services import current_registry_version, register_service
from routing.runtime import get_router
from telemetry.services import rebalance_weights

pytestmark = pytest.mark.django_db


def _register(sid, capacity):
    register_service(
        {
            "service_id": sid,
            "service_type": "inference",
            "endpoint": "http://127.0.0.1:9999",
            "capabilities": [],
            "max_capacity": capacity,
        }
    )


def test_a_slow_service_loses_weight_and_a_fast_one_gains(db):
    _register("fast", 100)
    _register("slow", 100)
    store = get_router().store
    for i in range(20):
        store.record_outcome(f"f{i}", "fast", True, 10.0)
        store.record_outcome(f"s{i}", "slow", True, 200.0)
    before = current_registry_version()

    result = rebalance_weights()

    fast = Service.objects.get(service_id="fast").weight
    slow = Service.objects.get(service_id="slow").weight
    assert fast > 1.0 > slow
    assert set(result["changed"]) == {"fast", "slow"}
    assert result["changed"]["slow"]["from"] == 1.0
    assert current_registry_version() > before


def test_a_balanced_fleet_is_left_alone(db):
    _register("a", 50)
    _register("b", 50)
    before = current_registry_version()

    result = rebalance_weights()

    assert result["changed"] == {}
    assert current_registry_version() == before


def test_rebalance_api_needs_an_operator(client_api, anon_api):
    assert client_api.post("/api/v1/load/rebalance").status_code == 403
    assert anon_api.post("/api/v1/load/rebalance").status_code == 401


@pytest.mark.parametrize(
    ("body", "content_type", "field", "code"),
    [
        ('{"foo": 1}', "application/json", "foo", "validation_error"),
        ("[1]", "application/json", "body", "validation_error"),
        ("xx", "application/json", "body", "invalid_json"),
    ],
)
def test_rebalance_api_refuses_a_body_it_would_ignore(
    operator_api, body, content_type, field, code
):
    # The job takes no parameters: a body that says something is refused, naming what it says,
    # instead of being queued as if it had been understood.
    response = operator_api.generic("POST", "/api/v1/load/rebalance", body, content_type)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code
    assert list(error["fields"]) == [field]


def test_rebalance_api_queues_the_job_and_reports_it(operator_api, eager_celery, db):
    _register("a", 50)
    assert operator_api.post("/api/v1/load/rebalance", {}, format="json").status_code == 202
    response = operator_api.post("/api/v1/load/rebalance")
    assert response.status_code == 202
    task_id = response.json()["task_id"]
    status = operator_api.get(f"/api/v1/load/rebalance/{task_id}").json()
    assert status["state"] == "SUCCESS"
    assert status["result"]["services"] == 1


def test_rebalance_scores_a_latency_outlier_as_anomalous(db):
    for sid in ("a", "b", "c", "d", "outlier"):
        _register(sid, 100)
    store = get_router().store
    for i in range(20):
        for sid in ("a", "b", "c", "d"):
            store.record_outcome(f"{sid}{i}", sid, True, 10.0 + i % 3)
        store.record_outcome(f"o{i}", "outlier", i % 2 == 0, 900.0)

    result = rebalance_weights()

    assert set(result["anomalies"]) == {"outlier"}
    live = get_router().live_states(["outlier", "a"])
    assert live["outlier"]["anomaly"] > 0.5
    assert live["a"]["anomaly"] == 0.0


@pytest.mark.skipif(bool(settings.REDIS_URL), reason="with Redis the job reads shared live state")
def test_without_redis_the_job_learns_from_recorded_outcomes(db, client_api):
    # given: the job's process has no live state of its own, only history
    from routing.history import flush_history
    from routing.runtime import reset_router

    _register("fast", 100)
    _register("slow", 100)
    for i in range(20):
        for sid in ("fast", "slow"):
            routed = client_api.post(
                "/api/v1/route",
                {"data": {"key": f"{sid}{i}"}, "routing_strategy": "consistent_hash"},
                format="json",
            ).json()
            chosen = routed["selected_services"][0]
            client_api.post(
                f"/api/v1/route/{routed['request_id']}/outcome",
                {
                    "service_id": chosen,
                    "success": True,
                    "latency_ms": 5.0 if chosen == "fast" else 300.0,
                },
                format="json",
            )
    flush_history()
    reset_router()  # a fresh process: nothing in live state

    rebalance_weights()

    assert (
        Service.objects.get(service_id="fast").weight
        > Service.objects.get(service_id="slow").weight
    )
