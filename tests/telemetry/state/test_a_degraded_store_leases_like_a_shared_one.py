"""While Redis is unreachable, the local fallback leases with the store's own LeaseConfig."""

from routing.core.state import LeaseConfig
from telemetry.state.redis_store import RedisStateStore, make_client
from tests.telemetry.state.conftest import FakeClock, fleet, free_port


def test_the_fallback_uses_the_same_lease_rule():
    clock = FakeClock()
    lease = LeaseConfig(default_s=0.3, factor=3.0)
    nobody = make_client(f"redis://127.0.0.1:{free_port()}/0")  # connection refused
    store = RedisStateStore(nobody, clock=clock, lease=lease)
    assert store.degraded
    assert store.fallback.lease is lease
    snapshot = fleet(2)
    store.record_outcome("warm", "svc-01", True, 100.0)  # 3 x 100 ms = 0.3 s as well
    routed_at = clock.now
    store.record_routed("r1", ["svc-00", "svc-01"])

    clock.now = routed_at + 0.3 - 1e-6
    assert store.view(snapshot).in_flight.tolist() == [1, 1]
    clock.now = routed_at + 0.3
    assert store.view(snapshot).in_flight.tolist() == [0, 0]
