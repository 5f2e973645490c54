"""A breaker that opens on another worker between this worker's view and its dispatch: the
dispatch is refused (the shared breaker never lets an open service take work), and the
request is routed again on a fresh view instead of answering 503 while another service can
serve it. Redis state only (the local store has no other workers)."""

import dataclasses

import pytest

from routing.core.types import BreakerState, RouteRequest

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_refused_dispatch_is_routed_again_on_a_fresh_view(two_workers):
    a, b = two_workers
    request = RouteRequest(request_type="inference", complexity=0.5, key="user-7")
    pinned = b.route(request, "consistent_hash", None).decision.selected[0]
    # B's view is fresh and says the pinned service is closed; A opens its breaker now.
    a.store.force_breaker(pinned, BreakerState.OPEN)

    routed = b.route(request, "consistent_hash", None)

    assert not routed.decision.no_eligible_service, routed.decision.reason
    assert routed.decision.selected and pinned not in routed.decision.selected
    # ... and B's view now knows: the next request goes elsewhere at once.
    assert pinned not in b.route(request, "consistent_hash", None).decision.selected


def test_a_refused_first_pick_of_a_top_k_decision_voids_its_propensity(two_workers):
    """The second service of a top-k decision serves when another worker's breaker refuses
    the first at dispatch. The logged propensity was the first one's probability: the answer
    and the history row carry none (off-policy evaluation would weigh the second service's
    outcome with the first one's probability)."""
    from routing.history.flush import flush_history
    from routing.models import RoutingDecision

    a, b = two_workers
    learner = b.engine.learner
    # No exploration: the second route picks what the first did.
    learner.config = dataclasses.replace(
        learner.config, epsilon=0.0, epsilon_min=0.0, epsilon_uniform=0.0, forced_share=0.0
    )
    request = RouteRequest(request_type="inference", complexity=0.5)
    first, second = b.route(request, "top_k", 2).decision.selected
    a.store.force_breaker(first, BreakerState.OPEN)

    routed = b.route(request, "top_k", 2)

    assert routed.decision.selected == (second,), routed.decision.reason
    assert routed.decision.propensity is None
    flush_history()
    row = RoutingDecision.objects.get(request_id=routed.request_id)
    assert row.primary_service == second
    assert row.propensity is None
