"""A lease never lasts less than ``min_s`` (a very fast service) nor more than ``max_s`` (a very
slow one, or a wild EWMA): ``max_s`` bounds how long any unreported request counts."""

from routing.core.state import LeaseConfig
from tests.telemetry.state.conftest import FakeClock, fleet


def test_a_very_fast_service_gets_the_minimum_and_a_very_slow_one_the_cap(backend):
    clock = FakeClock()
    store = backend(clock=clock, lease=LeaseConfig(min_s=0.05, max_s=10.0))
    snapshot = fleet(2)
    store.record_outcome("warm-fast", "svc-00", True, 1.0)  # 2 x 1 ms = 2 ms -> 50 ms
    store.record_outcome("warm-slow", "svc-01", True, 60_000.0)  # 2 x 60 s = 120 s -> 10 s
    routed_at = clock.now
    store.record_routed("fast", ["svc-00"])
    store.record_routed("slow", ["svc-01"])

    clock.now = routed_at + 0.05 - 1e-6
    assert store.view(snapshot).in_flight.tolist() == [1, 1]
    clock.now = routed_at + 0.05
    assert store.view(snapshot).in_flight.tolist() == [0, 1]
    clock.now = routed_at + 10.0 - 1e-6
    assert store.view(snapshot).in_flight.tolist() == [0, 1]
    clock.now = routed_at + 10.0
    assert store.view(snapshot).in_flight.tolist() == [0, 0]


def test_the_rule_in_numbers():
    lease = LeaseConfig(min_s=0.05, max_s=10.0)
    assert lease.ttl(1.0) == 0.05
    assert lease.ttl(60_000.0) == 10.0
    assert lease.ttl(1000.0) == 2.0
