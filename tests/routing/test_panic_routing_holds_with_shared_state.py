"""Panic routing with Redis state: when the breaker of every service able to serve a request is
open, the engine routes among them anyway (as the local store and the README say), and the
shared dispatch must take those dispatches instead of refusing them: the answer was a 503
whose reason said it had routed. Redis state only (the local store never refuses)."""

import pytest

from routing.core.types import BreakerState, RouteRequest
from routing.runtime import Router

pytestmark = pytest.mark.django_db(transaction=True)

STORAGE = RouteRequest(request_type="storage", complexity=0.5)  # store-a alone serves it


def _state(router: Router, service_id: str) -> dict:
    return router.live_states([service_id])[service_id]


@pytest.mark.parametrize("strategy", ["switch_transformer", "power_of_two", "consistent_hash"])
def test_a_request_whose_every_able_service_is_open_is_routed_to_one(two_workers, strategy):
    a, _ = two_workers
    a.store.force_breaker("store-a", BreakerState.OPEN)

    routed = a.route(STORAGE, strategy, None)

    decision = routed.decision
    assert decision.selected == ("store-a",), decision.reason
    assert not decision.no_eligible_service and decision.panic
    assert "panic" in decision.reason and "refused" not in decision.reason
    # The dispatch took a lease like any other (released by its outcome) ...
    assert _state(a, "store-a")["in_flight"] == 1
    # ... and left the breaker open: panic does not count as a probe.
    assert _state(a, "store-a")["breaker_state"] == BreakerState.OPEN.value


# 3 dispatches go to Redis as plain arguments, 20 in the joined encoding (see _dispatch_args).
@pytest.mark.parametrize("n", [3, 20])
def test_a_batch_in_panic_is_routed_too(two_workers, n):
    a, _ = two_workers
    a.store.force_breaker("store-a", BreakerState.OPEN)
    inference = RouteRequest(request_type="inference", complexity=0.5)

    routed = a.route_batch([STORAGE, inference] * (n // 2), "switch_transformer", None)

    assert [r.decision.selected for r in routed[::2]] == [("store-a",)] * (n // 2)
    assert all(r.decision.panic for r in routed[::2])
    # The inference requests in the same batch were not in panic: their services are closed.
    assert not any(r.decision.panic for r in routed[1::2])
    assert all(r.decision.selected for r in routed[1::2])
    assert _state(a, "store-a")["in_flight"] == n // 2


def test_a_breaker_opened_by_another_worker_leads_to_panic_not_503(two_workers):
    a, b = two_workers
    assert b.route(STORAGE, "switch_transformer", None).decision.selected == ("store-a",)
    # B's view is fresh and says store-a is closed; A opens its breaker now. B's dispatch is
    # refused, B routes again on a fresh view, where every able service is open: panic.
    a.store.force_breaker("store-a", BreakerState.OPEN)

    routed = b.route(STORAGE, "switch_transformer", None)

    assert routed.decision.selected == ("store-a",), routed.decision.reason
    assert routed.decision.panic


def test_panic_off_answers_no_eligible_service(two_workers, settings):
    settings.MOE_BREAKER_PANIC = False
    router = Router()
    try:
        router.store.force_breaker("store-a", BreakerState.OPEN)
        decision = router.route(STORAGE, "switch_transformer", None).decision
    finally:
        router.close()

    assert decision.no_eligible_service and not decision.selected and not decision.panic


def _prometheus(name: str, **labels) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_count_a_refused_dispatch_as_answered_not_as_sent(two_workers):
    a, b = two_workers
    both = RouteRequest(request_type="inference", complexity=0.5)  # inf-a or inf-b
    b.route(both, "consistent_hash", None)  # B's view is now fresh: every breaker closed
    a.store.force_breaker("inf-a", BreakerState.OPEN)
    a.store.force_breaker("inf-b", BreakerState.OPEN)
    counts_before = b.metrics.counts()
    sent_before = {s: _prometheus("moe_expert_usage_total", service=s) for s in ("inf-a", "inf-b")}
    none_before = _prometheus(
        "moe_routing_total", strategy="consistent_hash", outcome="no_eligible"
    )

    # B dispatches on its stale view; Redis refuses both services: answered as no service.
    routed = b.route_batch([both] * 10, "consistent_hash", None)

    assert all(r.decision.no_eligible_service for r in routed)
    counts = b.metrics.counts()
    for sid in ("inf-a", "inf-b"):
        assert counts[f"service:{sid}"] == counts_before[f"service:{sid}"], sid
        assert _prometheus("moe_expert_usage_total", service=sid) == sent_before[sid], sid
    assert counts["total:no_eligible"] - counts_before["total:no_eligible"] == 10
    assert counts["total:routed"] - counts_before["total:routed"] == 10
    after = _prometheus("moe_routing_total", strategy="consistent_hash", outcome="no_eligible")
    assert after - none_before == 10
