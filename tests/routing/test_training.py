"""retrain_gate learns from history, activates a version only when off-policy evaluation on
held-out logged decisions says it is better, and workers load it."""

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
    # given: requests of type "vision" do best on "fast"; the others succeed, slowly (so no
    # breaker opens and every service stays a candidate). Logged by power_of_two, a
    # randomised policy that logs the probability of each of its picks.
    for i in range(n):
        routed = client.post(
            "/api/v1/route",
            {"data": {"type": "vision", "key": i}, "routing_strategy": "power_of_two"},
            format="json",
        ).json()
        service = routed["selected_services"][0]
        fast = service == "fast"
        client.post(
            f"/api/v1/route/{routed['request_id']}/outcome",
            {"service_id": service, "success": True, "latency_ms": 5.0 if fast else 400.0},
            format="json",
        )
    flush_history()


def test_retraining_creates_an_active_version_that_prefers_the_good_service(client_api):
    _fleet()
    _history(client_api, n=800)

    result = retrain_gate()

    assert result["trained"] and result["activated"], result
    active = GateModel.objects.get(active=True)
    assert active.version == result["version"]
    evaluation = active.evaluation
    assert evaluation["against"] == "cold start (no active version)"
    assert evaluation["lower_bound"] > 0
    assert evaluation["candidate"]["dr"] > evaluation["baseline"]["dr"] + 0.1
    assert evaluation["ess"] >= 30
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
