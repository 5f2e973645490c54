"""A service with no latency EWMA yet (nothing measured) leases each selection for
``LeaseConfig.default_s``: an unreported request stops counting in flight after that long."""

from routing.core.state import LeaseConfig
from tests.telemetry.state.conftest import FakeClock, fleet


def test_an_unreported_request_on_an_unmeasured_service_expires_after_the_default(backend):
    clock = FakeClock()
    store = backend(clock=clock, lease=LeaseConfig(default_s=0.25))
    snapshot = fleet(2)
    assert store.view(snapshot).ewma_latency_ms.tolist() == [0.0, 0.0]

    store.record_routed("lost", ["svc-00"])
    clock.advance(0.2)
    store.record_routed("later", ["svc-01"])
    clock.now = 1_700_000_000.0 + 0.25 - 1e-6
    assert store.view(snapshot).in_flight.tolist() == [1, 1]

    clock.now = 1_700_000_000.0 + 0.25  # "lost" reaches its deadline; "later" has 0.2 s left

    assert store.view(snapshot).in_flight.tolist() == [0, 1]
    assert store.in_flight_requests() == 1
    clock.advance(0.2)
    assert store.view(snapshot).in_flight.tolist() == [0, 0]
    assert store.in_flight_requests() == 0


def test_the_default_lease_is_fifty_milliseconds():
    assert LeaseConfig().ttl(0.0) == 0.05
