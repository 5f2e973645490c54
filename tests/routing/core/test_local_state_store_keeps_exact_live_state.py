"""LocalStateStore: exact in-flight counts under threads, expiry of lost requests, EWMA, error
window, breaker transitions visible in the next view, and the operator/API helpers."""

import threading

import numpy as np

from routing.core.breaker import BreakerConfig
from routing.core.state import LeaseConfig, LocalStateStore
from routing.core.types import BreakerState
from tests.routing.core.fleets import uniform_fleet
from tests.support.clock import FakeClock

# Real-clock tests that count in flight hold their leases long enough to read them back.
LONG = LeaseConfig.fixed(3600)


def test_in_flight_is_exact_after_many_threads_route_and_finish():
    store = LocalStateStore(lease=LONG)
    snapshot = uniform_fleet(4)
    ids = snapshot.service_ids
    barrier = threading.Barrier(8)

    def worker(w: int) -> None:
        barrier.wait()
        for i in range(500):
            rid = f"{w}-{i}"
            store.record_routed(rid, [ids[i % 4]])
            store.view(snapshot)
            if i % 5:  # 4 in 5 finish; the rest stay in flight
                store.record_outcome(rid, ids[i % 4], True, 5.0)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert store.view(snapshot).in_flight.tolist() == [200.0, 200.0, 200.0, 200.0]
    assert store.in_flight_requests() == 800


def test_a_request_whose_outcome_never_arrives_stops_counting_after_the_timeout():
    clock = FakeClock(100.0)
    store = LocalStateStore(lease=LeaseConfig.fixed(30), clock=clock)
    snapshot = uniform_fleet(2)
    store.record_routed("lost", ["svc-000"])
    store.record_routed("kept", ["svc-000", "svc-001"])
    clock.now += 20
    store.record_routed("late", ["svc-001"])
    assert store.view(snapshot).in_flight.tolist() == [2.0, 2.0]
    clock.now += 10.5
    assert store.view(snapshot).in_flight.tolist() == [0.0, 1.0]
    # A late outcome for an expired request releases nothing twice.
    store.record_outcome("lost", "svc-000", True, 10.0)
    assert store.view(snapshot).in_flight.tolist() == [0.0, 1.0]


def test_outcomes_feed_the_ewma_and_the_error_window():
    store = LocalStateStore(ewma_alpha=0.5, error_window=4)
    snapshot = uniform_fleet(1)
    for i, (ok, latency) in enumerate([(True, 10), (True, 20), (False, 40), (True, 20)]):
        store.record_routed(str(i), ["svc-000"])
        store.record_outcome(str(i), "svc-000", ok, latency)
    live = store.view(snapshot)
    assert live.ewma_latency_ms[0] == 0.5 * 20 + 0.5 * (0.5 * 40 + 0.5 * (0.5 * 20 + 0.5 * 10))
    assert live.error_rate[0] == 0.25
    store.record_outcome("x", "svc-000", True, None)  # latency unknown: EWMA unchanged
    assert store.view(snapshot).ewma_latency_ms[0] == live.ewma_latency_ms[0]


def test_an_opened_breaker_is_excluded_from_the_next_view_and_probes_after_the_backoff():
    clock = FakeClock(100.0)
    transitions = []
    store = LocalStateStore(
        BreakerConfig(
            consecutive_failures=2, base_open_s=10, half_open_max_probes=1, baseline_min_results=0
        ),
        clock=clock,
        on_transition=lambda *t: transitions.append(t),
    )
    snapshot = uniform_fleet(2)
    assert store.view(snapshot).breaker_allows.tolist() == [True, True]
    assert store.record_outcome("a", "svc-000", False, 5.0) is None
    assert store.record_outcome("b", "svc-000", False, 5.0) is BreakerState.OPEN
    assert store.view(snapshot).breaker_allows.tolist() == [False, True]
    clock.now += 10
    assert store.view(snapshot).breaker_allows.tolist() == [True, True]
    store.record_routed("probe", ["svc-000"])
    assert store.breaker_record("svc-000").state is BreakerState.HALF_OPEN
    assert store.view(snapshot).breaker_allows.tolist() == [False, True]  # its one probe is out
    assert store.record_outcome("probe", "svc-000", True, 5.0) is None
    assert store.record_outcome("probe2", "svc-000", True, 5.0) is BreakerState.CLOSED
    assert [t[2] for t in transitions] == [
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.CLOSED,
    ]


def test_state_survives_a_new_snapshot_with_a_different_order():
    store = LocalStateStore(lease=LONG)
    store.record_routed("r", ["svc-002"])
    store.set_anomaly("svc-001", 0.7)
    small, bigger = uniform_fleet(3), uniform_fleet(5)
    assert store.view(small).in_flight.tolist() == [0, 0, 1]
    live = store.view(bigger)
    assert live.in_flight.tolist() == [0, 0, 1, 0, 0]
    assert live.anomaly.tolist() == [0, 0.7, 0, 0, 0]


def test_views_are_cached_read_only_and_refreshed_after_a_change():
    store = LocalStateStore(lease=LONG)
    snapshot = uniform_fleet(3)
    first = store.view(snapshot)
    assert store.view(snapshot) is first
    assert not first.in_flight.flags.writeable
    store.record_routed("r", ["svc-001"])
    second = store.view(snapshot)
    assert second is not first
    assert first.in_flight.tolist() == [0, 0, 0]  # handed-out views never change
    assert second.in_flight.tolist() == [0, 1, 0]


def test_operators_can_force_a_breaker_and_read_the_state():
    store = LocalStateStore(lease=LONG)
    snapshot = uniform_fleet(2)
    store.force_breaker("svc-001", BreakerState.OPEN)
    assert store.view(snapshot).breaker_allows.tolist() == [True, False]
    store.record_routed("r", ["svc-000"])
    state = store.snapshot_state()
    assert state["svc-001"]["breaker_state"] == "open"
    assert state["svc-000"]["in_flight"] == 1
    assert set(state["svc-000"]) == {
        "in_flight",
        "ewma_latency_ms",
        "error_rate",
        "breaker_state",
        "breaker_allows",
        "anomaly",
    }
    store.force_breaker("svc-001", BreakerState.CLOSED)
    assert bool(np.all(store.view(snapshot).breaker_allows))


def test_a_removed_service_is_forgotten():
    store = LocalStateStore(lease=LONG)
    store.record_routed("r", ["svc-000", "svc-001"])
    store.remove_service("svc-000")
    assert store.view(uniform_fleet(2)).in_flight.tolist() == [0, 1]
    assert "svc-000" not in store.snapshot_state()
