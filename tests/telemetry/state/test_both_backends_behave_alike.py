"""The LiveStateStore contract, run against LocalStateStore and RedisStateStore alike.

Both stores get the same fake wall clock and options; every assertion here must hold for both,
which is what makes them interchangeable behind ``create_state_store()``.
"""

import pytest

from routing.core.breaker import BreakerConfig, BreakerRecord
from routing.core.state import LeaseConfig
from routing.core.types import BreakerState, FleetSnapshot, LiveView, ServiceSpec
from tests.telemetry.state.conftest import FakeClock, fleet

# The plain thresholds (3 failures in a row open it, whatever is known of the service): these
# tests are about the two stores agreeing; runs judged against a service's normal are checked
# step by step against the Python in tests/telemetry/state/test_lua_breaker_matches_python.py.
CONFIG = BreakerConfig(
    consecutive_failures=3, base_open_s=5.0, half_open_max_probes=2, baseline_min_results=0
)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def store(backend, clock):
    return backend(
        breaker_config=CONFIG, clock=clock, lease=LeaseConfig.fixed(30.0), error_window=4
    )


def test_a_new_fleet_is_idle(store):
    view = store.view(fleet(3))

    assert isinstance(view, LiveView)
    assert view.in_flight.tolist() == [0, 0, 0]
    assert view.ewma_latency_ms.tolist() == [0, 0, 0]
    assert view.error_rate.tolist() == [0, 0, 0]
    assert view.anomaly.tolist() == [0, 0, 0]
    assert view.breaker_allows.tolist() == [True, True, True]


def test_a_routed_request_counts_in_flight_until_its_outcome(store):
    snapshot = fleet(3)

    store.record_routed("r1", ["svc-00", "svc-02"])
    store.record_routed("r2", ["svc-02"])
    assert store.view(snapshot).in_flight.tolist() == [1, 0, 2]
    assert store.in_flight_requests() == 2

    store.record_outcome("r1", "svc-02", True, 10.0)
    assert store.view(snapshot).in_flight.tolist() == [1, 0, 1]
    store.record_outcome("r1", "svc-00", True, 10.0)
    store.record_outcome("r2", "svc-02", True, 10.0)
    assert store.view(snapshot).in_flight.tolist() == [0, 0, 0]
    assert store.in_flight_requests() == 0


def test_a_second_outcome_for_the_same_request_releases_nothing(store):
    snapshot = fleet(1)
    store.record_routed("r1", ["svc-00"])
    store.record_routed("r2", ["svc-00"])

    store.record_outcome("r1", "svc-00", True, 5.0)
    store.record_outcome("r1", "svc-00", True, 5.0)

    assert store.view(snapshot).in_flight.tolist() == [1]


def test_the_view_is_in_snapshot_order_whatever_the_order_of_updates(store):
    snapshot = fleet(4)
    store.set_anomaly("svc-03", 0.3)
    store.set_anomaly("svc-01", 0.1)
    store.record_outcome("x", "svc-02", True, 20.0)

    view = store.view(snapshot)

    assert view.anomaly.tolist() == [0.0, 0.1, 0.0, 0.3]
    assert view.ewma_latency_ms.tolist() == [0.0, 0.0, 20.0, 0.0]


def test_the_first_latency_sets_the_ewma_and_later_ones_are_smoothed(store):
    snapshot = fleet(1)
    store.record_outcome("a", "svc-00", True, 100.0)
    assert store.view(snapshot).ewma_latency_ms[0] == 100.0

    store.record_outcome("b", "svc-00", True, 200.0)
    assert store.view(snapshot).ewma_latency_ms[0] == pytest.approx(0.2 * 200 + 0.8 * 100)

    store.record_outcome("c", "svc-00", True, None)  # no latency: EWMA unchanged
    assert store.view(snapshot).ewma_latency_ms[0] == pytest.approx(120.0)


def test_the_error_rate_covers_the_last_window_of_outcomes(store):
    snapshot = fleet(1)
    for success in (False, True, True, True):
        store.record_outcome("x", "svc-00", success, 1.0)
    assert store.view(snapshot).error_rate[0] == 0.25

    store.record_outcome("x", "svc-00", True, 1.0)  # the failure leaves the 4-wide window
    assert store.view(snapshot).error_rate[0] == 0.0


def test_anomaly_scores_are_clamped_to_zero_one(store):
    snapshot = fleet(2)
    store.set_anomaly("svc-00", 3.0)
    store.set_anomaly("svc-01", -1.0)

    assert store.view(snapshot).anomaly.tolist() == [1.0, 0.0]


def test_consecutive_failures_open_the_breaker_and_the_view_excludes_the_service(store, clock):
    snapshot = fleet(2)

    results = [store.record_outcome(f"r{i}", "svc-01", False, 50.0) for i in range(3)]

    assert results == [None, None, BreakerState.OPEN]
    assert store.view(snapshot).breaker_allows.tolist() == [True, False]
    record = store.breaker_record("svc-01")
    assert record.state is BreakerState.OPEN
    assert record.open_until == clock.now + 5.0


def test_an_open_breaker_probes_after_its_backoff_and_closes_on_successes(store, clock):
    snapshot = fleet(1)
    for i in range(3):
        store.record_outcome(f"f{i}", "svc-00", False, None)
    clock.advance(5.0)
    assert store.view(snapshot).breaker_allows.tolist() == [True]

    store.record_routed("probe-1", ["svc-00"])
    assert store.breaker_record("svc-00").state is BreakerState.HALF_OPEN
    assert store.breaker_record("svc-00").probes_in_flight == 1

    assert store.record_outcome("probe-1", "svc-00", True, 3.0) is None
    store.record_routed("probe-2", ["svc-00"])
    assert store.record_outcome("probe-2", "svc-00", True, 3.0) is BreakerState.CLOSED
    assert store.view(snapshot).breaker_allows.tolist() == [True]


def test_a_forced_breaker_state_is_what_breaker_record_reports(store, clock):
    store.force_breaker("svc-00", BreakerState.OPEN)
    assert store.breaker_record("svc-00") == BreakerRecord(
        state=BreakerState.OPEN, open_count=1, open_until=clock.now + 5.0
    )
    assert store.view(fleet(1)).breaker_allows.tolist() == [False]

    store.force_breaker("svc-00", BreakerState.CLOSED)
    assert store.breaker_record("svc-00").state is BreakerState.CLOSED
    assert store.breaker_record("unknown") == BreakerRecord()


def test_unreported_requests_stop_counting_after_the_timeout(store, clock):
    snapshot = fleet(1)
    store.record_routed("lost", ["svc-00"])
    clock.advance(29.9)
    store.record_routed("kept", ["svc-00"])
    assert store.view(snapshot).in_flight.tolist() == [2]

    clock.advance(0.1)  # "lost" reaches its deadline

    assert store.view(snapshot).in_flight.tolist() == [1]
    assert store.in_flight_requests() == 1


def test_a_lease_lasts_the_services_expected_service_time(backend, clock):
    lease = LeaseConfig(default_s=0.2, factor=2.0, min_s=0.05, max_s=5.0)
    store = backend(clock=clock, lease=lease)
    snapshot = fleet(4)
    # unmeasured (default), fast (floor), an awkward EWMA (2 x EWMA), very slow (cap)
    for service_id, latency in (("svc-01", 10.0), ("svc-02", 123.456), ("svc-03", 9999.0)):
        store.record_outcome("warm", service_id, True, latency)
    ewma = store.view(snapshot).ewma_latency_ms.tolist()
    assert ewma == [0.0, 10.0, 123.456, 9999.0]
    routed_at = clock.now
    store.record_routed("r1", snapshot.service_ids)

    # Exactly now + ttl on both backends (the Lua rule matches the Python bit for bit).
    deadlines = [routed_at + lease.ttl(e) for e in ewma]
    for i in sorted(range(4), key=deadlines.__getitem__):
        deadline = deadlines[i]
        clock.now = deadline - 1e-6
        assert store.view(snapshot).in_flight[i] == 1
        clock.now = deadline
        assert store.view(snapshot).in_flight[i] == 0
    assert store.in_flight_requests() == 0


def test_snapshot_state_lists_every_known_service(store):
    store.record_routed("r1", ["svc-00"])
    store.record_outcome("x", "svc-01", False, 7.0)
    store.set_anomaly("svc-02", 0.5)

    state = store.snapshot_state()

    assert sorted(state) == ["svc-00", "svc-01", "svc-02"]
    assert state["svc-00"]["in_flight"] == 1
    assert state["svc-01"] == {
        "in_flight": 0,
        "ewma_latency_ms": 7.0,
        "error_rate": 1.0,
        "breaker_state": "closed",
        "breaker_allows": True,
        "anomaly": 0.0,
    }
    assert state["svc-02"]["anomaly"] == 0.5


def test_a_removed_service_is_forgotten(store):
    store.record_routed("r1", ["svc-00", "svc-01"])
    store.force_breaker("svc-00", BreakerState.OPEN)

    store.remove_service("svc-00")

    assert sorted(store.snapshot_state()) == ["svc-01"]
    assert store.view(fleet(2)).in_flight.tolist() == [0, 1]
    assert store.breaker_record("svc-00").state is BreakerState.CLOSED


def test_breaker_transitions_are_reported_to_on_transition(backend, clock):
    seen = []
    store = backend(
        breaker_config=CONFIG, clock=clock, on_transition=lambda *t: seen.append(tuple(t))
    )
    for i in range(3):
        store.record_outcome(f"f{i}", "svc-00", False, None)
    clock.advance(5.0)
    store.record_routed("probe", ["svc-00"])
    store.force_breaker("svc-00", BreakerState.CLOSED)

    assert seen == [
        ("svc-00", BreakerState.CLOSED, BreakerState.OPEN),
        ("svc-00", BreakerState.OPEN, BreakerState.HALF_OPEN),
        ("svc-00", BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]


def test_service_ids_with_separator_characters_are_kept_apart(store):
    odd = ["a", "a|ew", "1:a", "line\nbreak", "a b,c"]
    snapshot = FleetSnapshot.build(
        [ServiceSpec(s, "t", "http://127.0.0.1:9000", frozenset(), 10) for s in odd]
    )
    for i, service_id in enumerate(snapshot.service_ids):
        store.record_routed(f"r{i}", [service_id])
        store.record_outcome(f"x{i}", service_id, True, float(10 * (i + 1)))
        store.set_anomaly(service_id, i / 10)

    view = store.view(snapshot)

    assert view.in_flight.tolist() == [1] * 5
    assert view.ewma_latency_ms.tolist() == [10.0, 20.0, 30.0, 40.0, 50.0]
    assert view.anomaly.tolist() == [0.0, 0.1, 0.2, 0.3, 0.4]
    store.remove_service("a")
    assert sorted(store.snapshot_state()) == sorted(set(odd) - {"a"})
    assert store.in_flight_requests() == 4
