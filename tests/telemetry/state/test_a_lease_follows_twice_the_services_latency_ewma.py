"""Once a service's latency is measured, a selection leases it for ``factor`` (2) x its latency
EWMA: the lease follows the EWMA as outcomes move it, and each service has its own."""

from routing.core.state import LeaseConfig
from tests.telemetry.state.conftest import FakeClock, fleet

START = 1_700_000_000.0


def counted_until(store, clock, snapshot, index, ttl):
    """Assert the lease routed at clock.now on service ``index`` counts until just before
    now + ttl and not at now + ttl."""
    routed_at = clock.now
    clock.now = routed_at + ttl - 1e-6
    assert store.view(snapshot).in_flight[index] == 1
    clock.now = routed_at + ttl
    assert store.view(snapshot).in_flight[index] == 0


def test_the_lease_is_twice_the_ewma_and_follows_it(backend):
    clock = FakeClock(START)
    store = backend(clock=clock, lease=LeaseConfig())  # default_s 0.05, factor 2
    snapshot = fleet(2)
    store.record_outcome("warm-1", "svc-00", True, 200.0)  # EWMA 200 ms -> lease 0.4 s
    store.record_outcome("warm-2", "svc-01", True, 1500.0)  # EWMA 1.5 s -> lease 3 s

    store.record_routed("a", ["svc-00"])
    counted_until(store, clock, snapshot, 0, 0.4)
    store.record_routed("b", ["svc-01"])
    counted_until(store, clock, snapshot, 1, 3.0)

    store.record_outcome("warm-3", "svc-00", True, 700.0)  # EWMA 0.2*700 + 0.8*200 = 300 ms
    assert store.view(snapshot).ewma_latency_ms[0] == 300.0
    store.record_routed("c", ["svc-00"])
    counted_until(store, clock, snapshot, 0, 0.6)


def test_the_rule_in_numbers():
    lease = LeaseConfig()
    assert lease.ttl(200.0) == 0.4
    assert lease.ttl(1500.0) == 3.0
    assert LeaseConfig(factor=3.0).ttl(100.0) == 0.3
