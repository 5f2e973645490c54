"""A breaker that opens on another worker between this worker's view and its dispatch: the
dispatch is refused (the shared breaker never lets an open service take work), and the
request is routed again on a fresh view instead of answering 503 while another service can
serve it. Redis state only (the local store has no other workers)."""

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
