"""A request routed to several services (top-k) holds one lease per service, each with that
service's own ttl: each expires at its own time, and the request stops counting in flight
when its last lease is gone."""

from routing.core.state import LeaseConfig
from tests.telemetry.state.conftest import FakeClock, fleet


def test_each_lease_of_a_top_k_request_expires_after_its_services_ttl(backend):
    clock = FakeClock()
    store = backend(clock=clock, lease=LeaseConfig(default_s=0.1, factor=2.0))
    snapshot = fleet(3)
    store.record_outcome("warm-0", "svc-00", True, 1000.0)  # lease 2.0 s
    store.record_outcome("warm-1", "svc-01", True, 250.0)  # lease 0.5 s
    # svc-02 is unmeasured: lease 0.1 s
    routed_at = clock.now
    store.record_routed("r1", ["svc-00", "svc-01", "svc-02"])
    assert store.view(snapshot).in_flight.tolist() == [1, 1, 1]

    expected = [(0.1, [1, 1, 0]), (0.5, [1, 0, 0]), (2.0, [0, 0, 0])]
    for ttl, in_flight in expected:
        clock.now = routed_at + ttl - 1e-6
        assert store.in_flight_requests() == 1
        clock.now = routed_at + ttl
        assert store.view(snapshot).in_flight.tolist() == in_flight
    assert store.in_flight_requests() == 0
