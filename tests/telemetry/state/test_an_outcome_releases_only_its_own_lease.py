"""An outcome for (request, service) releases that one lease: not the request's leases on
other services, not other requests' leases on the same service."""

from routing.core.state import LeaseConfig
from tests.telemetry.state.conftest import FakeClock, fleet


def test_an_outcome_releases_only_the_lease_of_its_request_on_its_service(backend):
    clock = FakeClock()
    store = backend(clock=clock, lease=LeaseConfig.fixed(5.0))
    snapshot = fleet(3)
    store.record_routed("r1", ["svc-00", "svc-01"])  # top-2: two leases
    store.record_routed("r2", ["svc-00"])
    assert store.view(snapshot).in_flight.tolist() == [2, 1, 0]

    store.record_outcome("r1", "svc-00", True, 10.0)

    assert store.view(snapshot).in_flight.tolist() == [1, 1, 0]  # r2 on 00, r1 on 01
    assert store.in_flight_requests() == 2

    store.record_outcome("r1", "svc-02", True, 10.0)  # r1 never leased svc-02
    store.record_outcome("r1", "svc-00", True, 10.0)  # already released
    assert store.view(snapshot).in_flight.tolist() == [1, 1, 0]

    store.record_outcome("r1", "svc-01", True, 10.0)
    assert store.view(snapshot).in_flight.tolist() == [1, 0, 0]
    assert store.in_flight_requests() == 1


def test_the_other_leases_of_a_request_still_expire_on_time(backend):
    clock = FakeClock()
    store = backend(clock=clock, lease=LeaseConfig.fixed(5.0))
    snapshot = fleet(2)
    store.record_routed("r1", ["svc-00", "svc-01"])
    clock.advance(4.0)
    store.record_outcome("r1", "svc-00", True, 10.0)  # svc-00's EWMA is 10 ms from now on

    clock.advance(1.0 - 1e-6)
    assert store.view(snapshot).in_flight.tolist() == [0, 1]
    clock.advance(1e-6)
    assert store.view(snapshot).in_flight.tolist() == [0, 0]
    assert store.in_flight_requests() == 0
