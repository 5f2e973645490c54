"""retrain_gate learns from history, activates only a better version, workers load it."""

import pytest

from registry.services import register_service
from routing.history import flush_history
from routing.models import GateModel
from routing.runtime import get_router
from routing.training import activate_gate_version, retrain_gate

pytestmark = pytest.mark.django_db(transaction=True)


def _fleet():
    for sid in ("fast", "slow", "flaky"):
        register_service(
            {
                "service_id": sid,
                "service_type": "inference",
                "endpoint": "http://127.0.0.1:9999",
                "capabilities": ["inference"],
                "max_capacity": 10_000,
            }
        )


def _history(client, n=300):
    # given: requests of type "vision" do well only on "fast"
    for i in range(n):
        routed = client.post(
            "/api/v1/route",
            {"data": {"type": "vision", "key": i}, "routing_strategy": "consistent_hash"},
            format="json",
        ).json()
        service = routed["selected_services"][0]
        good = service == "fast"
        client.post(
            f"/api/v1/route/{routed['request_id']}/outcome",
            {"service_id": service, "success": good, "latency_ms": 5.0 if good else 400.0},
            format="json",
        )
    flush_history()


def test_retraining_creates_an_active_version_that_prefers_the_good_service(client_api):
    _fleet()
    _history(client_api)

    result = retrain_gate()

    assert result["trained"] and result["activated"]
    active = GateModel.objects.get(active=True)
    assert active.version == result["version"]
    assert active.validation_metrics["loss"] < active.validation_metrics["baseline_loss"]
    # the router picks the new version up on its next snapshot refresh
    router = get_router()
    router.mark_stale()
    router.snapshot()
    assert router.gate_version == active.version
    picks = []
    for _ in range(20):
        routed = client_api.post(
            "/api/v1/route",
            {"data": {"type": "vision"}, "routing_strategy": "switch_transformer"},
            format="json",
        ).json()
        picks.append(routed["selected_services"][0])
        # finish each request, so the capacity factor does not spill later picks
        client_api.post(
            f"/api/v1/route/{routed['request_id']}/outcome",
            {"service_id": picks[-1], "success": True},
            format="json",
        )
    assert picks.count("fast") >= 18


def test_too_little_history_trains_nothing(client_api):
    _fleet()
    _history(client_api, n=10)

    assert retrain_gate() == {"trained": False, "reason": "only 10 examples with outcomes"}
    assert not GateModel.objects.exists()


def test_an_operator_can_roll_back_to_an_older_version(client_api):
    _fleet()
    _history(client_api, n=120)
    first = retrain_gate()["version"]
    _history(client_api, n=120)
    second = retrain_gate()

    activate_gate_version(first)

    assert GateModel.objects.get(active=True).version == first
    assert GateModel.objects.filter(active=True).count() == 1
    assert second["version"] != first
