"""A request whose outcome never arrives stops counting in flight when its lease expires
(here fixed leases, so the deadlines are known; leases that follow the EWMA are tested in
test_a_lease_follows_twice_the_services_latency_ewma.py and its neighbours)."""

import time

import pytest

from routing.core.state import LeaseConfig
from tests.telemetry.state.conftest import FakeClock, fleet

pytestmark = pytest.mark.integration  # real Redis


def test_a_request_from_a_worker_that_died_expires_for_every_other_worker(make_store):
    clock = FakeClock()
    dead = make_store(clock=clock, lease=LeaseConfig.fixed(30.0))
    alive = make_store(clock=clock, lease=LeaseConfig.fixed(30.0), view_max_age_s=0.0)
    snapshot = fleet(2)
    dead.record_routed("lost", ["svc-00", "svc-01"])
    clock.advance(10.0)
    alive.record_routed("fresh", ["svc-00"])

    clock.advance(19.999)
    assert alive.view(snapshot).in_flight.tolist() == [2, 1]
    clock.advance(0.001)  # "lost" reaches its deadline: a deadline <= now no longer counts
    assert alive.view(snapshot).in_flight.tolist() == [1, 0]
    assert alive.in_flight_requests() == 1


def test_expired_members_are_pruned_from_redis_on_the_next_write(make_store, key_prefix):
    clock = FakeClock()
    store = make_store(clock=clock, lease=LeaseConfig.fixed(5.0))
    for i in range(100):
        store.record_routed(f"r{i}", ["svc-00"])
    client = store._client
    assert client.zcard(f"{key_prefix}inflight") == 100

    clock.advance(5.0)
    store.record_routed("next", ["svc-00"])

    assert client.zcard(f"{key_prefix}inflight") == 1


def test_a_late_outcome_releases_nothing_but_still_counts(make_store):
    clock = FakeClock()
    store = make_store(clock=clock, lease=LeaseConfig.fixed(5.0), view_max_age_s=0.0)
    snapshot = fleet(1)
    store.record_routed("slow", ["svc-00"])
    store.record_routed("other", ["svc-00"])
    clock.advance(6.0)
    store.record_routed("new", ["svc-00"])

    store.record_outcome("slow", "svc-00", False, 6000.0)

    view = store.view(snapshot)
    assert view.in_flight.tolist() == [1]
    assert view.ewma_latency_ms.tolist() == [6000.0]
    assert view.error_rate.tolist() == [1.0]


def test_expiry_runs_on_the_real_wall_clock(make_store):
    store = make_store(lease=LeaseConfig.fixed(0.2), view_max_age_s=0.0)
    snapshot = fleet(1)
    store.record_routed("r1", ["svc-00"])
    assert store.view(snapshot).in_flight.tolist() == [1]

    time.sleep(0.25)

    assert store.view(snapshot).in_flight.tolist() == [0]
