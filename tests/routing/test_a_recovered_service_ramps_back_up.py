"""The router ramps a service's share up over MOE_SLOW_START_SECONDS after its breaker lets it
back in (or it joins the fleet); services it has known routable all along are not ramped."""

import time
from collections import Counter

import pytest

from routing.core.types import BreakerState
from routing.runtime import get_router, reset_router

pytestmark = pytest.mark.django_db(transaction=True)


def share_of(service_id, n=400):
    router = get_router()
    from routing.core.types import RouteRequest

    picks = []
    for _ in range(n):
        routed = router.route(RouteRequest(request_type="inference"), "power_of_two", None)
        picks.append(routed.decision.selected[0])
        # finish it at once, so in-flight counts stay level
        router.store.record_outcome(routed.request_id, picks[-1], True, 10.0)
    return Counter(picks)[service_id] / n


def test_a_service_whose_breaker_closes_again_gets_a_growing_share(fleet, settings):
    settings.MOE_SLOW_START_SECONDS = 1.5
    reset_router()
    router = get_router()
    assert share_of("inf-a") > 0.35  # known all along: no ramp
    router.store.force_breaker("inf-a", BreakerState.OPEN)
    assert share_of("inf-a", 50) == 0.0
    router.store.force_breaker("inf-a", BreakerState.CLOSED)

    early = share_of("inf-a", 300)
    time.sleep(1.6)
    late = share_of("inf-a", 400)

    assert early < 0.25
    assert late > 0.35


def test_with_slow_start_off_a_recovered_service_takes_its_full_share_at_once(fleet, settings):
    settings.MOE_SLOW_START_SECONDS = 0.0
    reset_router()
    router = get_router()
    share_of("inf-a", 50)
    router.store.force_breaker("inf-a", BreakerState.OPEN)
    share_of("inf-a", 50)
    router.store.force_breaker("inf-a", BreakerState.CLOSED)
    assert share_of("inf-a", 300) > 0.35
