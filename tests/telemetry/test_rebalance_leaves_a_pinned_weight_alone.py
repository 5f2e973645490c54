"""An operator pins a weight; the rebalance job moves the others and says which it skipped."""

import pytest

from registry.models import Service
from registry.services import current_registry_version, register_service
from routing.runtime import get_router
from telemetry.services import rebalance_weights

pytestmark = pytest.mark.django_db


def register(service_id: str, capacity: int, **extra) -> None:
    register_service(
        {
            "service_id": service_id,
            "service_type": "inference",
            "endpoint": "http://127.0.0.1:9999",
            "capabilities": [],
            "max_capacity": capacity,
            **extra,
        }
    )


def weight(service_id: str) -> float:
    return Service.objects.get(service_id=service_id).weight


def test_a_pinned_weight_is_left_alone_and_listed(db):
    # given: the operator set llm-code to 5 and pinned it; both services want new weights
    register("llm-code", 32, weight=5.0, weight_pinned=True)
    register("llm-general", 64)
    store = get_router().store
    for i in range(20):
        store.record_outcome(f"c{i}", "llm-code", True, 200.0)
        store.record_outcome(f"g{i}", "llm-general", True, 10.0)
    # when
    result = rebalance_weights()
    # then
    assert weight("llm-code") == 5.0
    assert result["pinned"] == ["llm-code"]
    assert set(result["changed"]) == {"llm-general"}
    assert weight("llm-general") > 1.0


def test_a_fleet_of_pinned_weights_keeps_its_registry_version(db):
    # given: capacities that would move both weights (targets 0.5 and 1.5)
    register("a", 50, weight_pinned=True)
    register("b", 150, weight_pinned=True)
    before = current_registry_version()
    # when
    result = rebalance_weights()
    # then
    assert result["changed"] == {}
    assert result["pinned"] == ["a", "b"]
    assert result["registry_version"] is None
    assert current_registry_version() == before
    assert (weight("a"), weight("b")) == (1.0, 1.0)


def test_an_unpinned_weight_still_moves(db):
    register("a", 50)
    register("b", 150)

    result = rebalance_weights()

    assert result["pinned"] == []
    assert weight("a") < 1.0 < weight("b")


def test_a_weight_set_while_the_job_computes_is_not_overwritten(db, monkeypatch):
    # given: the job has read the fleet; then an operator sets and pins a weight in admin
    register("a", 50)
    register("b", 150)
    router = get_router()
    read_live_states = router.live_states

    def operator_steps_in(ids):
        Service.objects.filter(service_id="a").update(weight=5.0, weight_pinned=True)
        return read_live_states(ids)

    monkeypatch.setattr(router, "live_states", operator_steps_in)
    # when
    result = rebalance_weights()
    # then: the operator's weight stands, and the result does not claim to have changed it
    assert weight("a") == 5.0
    assert set(result["changed"]) == {"b"}
    assert weight("b") > 1.0
