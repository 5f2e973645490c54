"""A client that routes at rate R and never reports an outcome keeps about R x ttl leases alive
(Little's law), not every request it ever sent: a fleet whose capacity exceeds that never looks
full. (With the old fixed 30 s timeout, 1,500 requests in 7 s filled a 40-slot fleet.)"""

import math

from routing.core.state import LeaseConfig
from routing.core.types import FleetSnapshot, ServiceSpec
from tests.telemetry.state.conftest import FakeClock

RATE = 200.0  # requests per second
REQUESTS = 1500  # 7.5 s of traffic
EWMA_MS = 50.0  # every service answers in ~50 ms: lease 2 x 50 ms = 0.1 s
CAPACITY = 10  # per service; 4 services: 40 slots, about twice R x ttl


def test_in_flight_stays_near_rate_times_ttl_and_below_capacity(backend):
    clock = FakeClock()
    lease = LeaseConfig()
    store = backend(clock=clock, lease=lease)
    snapshot = FleetSnapshot.build(
        [
            ServiceSpec(f"svc-{i}", "inference", f"http://h{i}:80", frozenset(), CAPACITY)
            for i in range(4)
        ]
    )
    for service_id in snapshot.service_ids:  # what reporting clients measured before
        store.record_outcome(f"warm-{service_id}", service_id, True, EWMA_MS)
    ttl = lease.ttl(EWMA_MS)
    bound = math.ceil(RATE * ttl)  # leases started within the last ttl seconds
    assert (bound + 1) * 1.5 < CAPACITY * len(snapshot)

    peak = 0
    for i in range(REQUESTS):
        view = store.view(snapshot)
        assert (view.in_flight < snapshot.capacity).all(), (i, view.in_flight.tolist())
        least_loaded = snapshot.service_ids[int(view.in_flight.argmin())]
        store.record_routed(f"never-reported-{i}", [least_loaded])
        peak = max(peak, int(store.view(snapshot).in_flight.sum()))
        clock.advance(1.0 / RATE)

    # About R x ttl (one either way: a lease routed exactly ttl ago may count or not), and
    # the leases really were held for ~ttl, not dropped at once.
    assert bound - 1 <= peak <= bound + 1
    assert store.in_flight_requests() <= bound + 1
