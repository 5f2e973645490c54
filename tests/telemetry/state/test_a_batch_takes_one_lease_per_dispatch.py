"""A batch's dispatches to closed breakers are added per service in bulk (Redis: one ZADD and
one count update per service, scripts.ROUTED; local: one expiry entry per service), and
expired leases are released per service in bulk: in both backends the counts must stay
exactly those of one dispatch at a time."""

from __future__ import annotations

from routing.core.state import LeaseConfig
from telemetry.state.redis_store import ROUTED_CHUNK
from tests.telemetry.state.conftest import HELD, FakeClock, fleet


def in_flight(store, snapshot) -> list[float]:
    return store.view(snapshot).in_flight.tolist()


def test_a_batch_counts_each_request_once_per_service(backend):
    # given: more requests than one routed call takes, some routed twice, some top-2
    store = backend(lease=HELD)
    snapshot = fleet(3)
    n = ROUTED_CHUNK + 100
    items = [(f"r{i}", [f"svc-0{i % 3}"]) for i in range(n)]
    items += [(f"r{i}", [f"svc-0{i % 3}"]) for i in range(10)]  # renewed, not counted again
    items += [(f"t{i}", ["svc-00", "svc-01"]) for i in range(5)]

    # when
    refused = store.record_routed_many(items)

    # then
    assert refused == []
    per_service = [sum(1 for i in range(n) if i % 3 == k) for k in range(3)]
    assert in_flight(store, snapshot) == [per_service[0] + 5, per_service[1] + 5, per_service[2]]
    assert store.in_flight_requests() == n + 5


def test_a_batch_routed_again_keeps_the_counts(backend):
    store = backend(lease=HELD)
    snapshot = fleet(2)
    items = [(f"r{i}", [f"svc-0{i % 2}"]) for i in range(40)]

    store.record_routed_many(items)
    store.record_routed_many(items)

    assert in_flight(store, snapshot) == [20.0, 20.0]


def test_expired_batch_leases_are_released_per_service(backend):
    # given: leases of 1 s on a clock we move
    clock = FakeClock()
    store = backend(lease=LeaseConfig.fixed(1.0), clock=clock)
    snapshot = fleet(3)
    store.record_routed_many([(f"a{i}", [f"svc-0{i % 3}"]) for i in range(30)])
    clock.advance(0.5)
    store.record_routed_many([(f"b{i}", ["svc-01"]) for i in range(7)])

    # when: the first batch's leases expire, the second's do not
    clock.advance(0.6)

    # then
    assert in_flight(store, snapshot) == [0.0, 7.0, 0.0]
    clock.advance(1.0)
    assert in_flight(store, snapshot) == [0.0, 0.0, 0.0]
    assert store.in_flight_requests() == 0


def test_a_lease_renewed_or_released_after_its_batch_is_not_expired_with_it(backend):
    # given: a batch of 1 s leases
    clock = FakeClock()
    store = backend(lease=LeaseConfig.fixed(1.0), clock=clock)
    snapshot = fleet(2)
    store.record_routed_many([(f"a{i}", [f"svc-0{i % 2}"]) for i in range(10)])
    clock.advance(0.5)

    # when: one lease is renewed by a later route, one released by its outcome
    store.record_routed("a0", ["svc-00"])
    store.record_outcome("a1", "svc-01", True, None)
    clock.advance(0.6)

    # then: the batch's other leases expired; the renewed one still counts, until its time
    assert in_flight(store, snapshot) == [1.0, 0.0]
    assert store.in_flight_requests() == 1
    clock.advance(0.5)
    assert in_flight(store, snapshot) == [0.0, 0.0]
