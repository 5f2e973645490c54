"""A routed request costs at most one pipelined round trip, even sharing the caller's pipeline.

Round trips are counted at the socket: every write of a command batch to Redis goes through
``Connection.send_packed_command`` (a pipeline writes all its commands in one call, and an
extra ``SCRIPT EXISTS`` or ``SCRIPT LOAD`` would be another call).
"""

import pytest
from redis.connection import AbstractConnection

from telemetry.state.redis_store import RedisStateStore, make_client
from tests.telemetry.state.conftest import HELD, fleet

pytestmark = pytest.mark.integration  # real Redis


@pytest.fixture
def round_trips(monkeypatch):
    sent: list = []
    original = AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(command)
        return original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    return sent


def warm(store, round_trips):
    """Open the store's connection first (its handshake is per connection, not per request),
    then start counting."""
    store._client.ping()
    round_trips.clear()
    return store


def test_routing_on_the_callers_pipeline_adds_no_round_trip(make_store, key_prefix, round_trips):
    store = warm(make_store(lease=HELD), round_trips)
    stream = f"{key_prefix}history"
    pipe = store.pipeline()
    pipe.xadd(stream, {"request_id": "r1"})

    store.record_routed("r1", ["svc-00", "svc-01"], pipe=pipe)
    assert round_trips == []  # only queued
    results = store.execute(pipe)

    assert len(round_trips) == 1
    assert results[1] == []  # nothing refused
    assert store._client.xlen(stream) == 1
    assert store.snapshot_state()["svc-01"]["in_flight"] == 1


def test_a_batch_of_1200_requests_is_still_one_round_trip(make_store, round_trips):
    store = warm(make_store(lease=HELD), round_trips)
    items = [(f"r{i}", [f"svc-{i % 64:02d}"]) for i in range(1200)]
    pipe = store.pipeline()

    store.record_routed_many(items, pipe=pipe)
    store.execute(pipe)

    assert len(round_trips) == 1
    assert len(pipe.command_stack) == 0
    assert store.in_flight_requests() == 1200


def test_routing_or_reporting_without_a_pipeline_is_one_round_trip_each(make_store, round_trips):
    store = warm(make_store(lease=HELD), round_trips)

    store.record_routed("r1", ["svc-00", "svc-01"])
    assert len(round_trips) == 1
    store.record_routed_many([("r2", ["svc-00"]), ("r3", ["svc-01"])])
    assert len(round_trips) == 2
    store.record_outcome("r1", "svc-00", True, 12.0)
    assert len(round_trips) == 3


def test_a_view_refresh_is_one_round_trip_and_a_cached_view_none(make_store, round_trips):
    store = warm(make_store(lease=HELD, view_max_age_s=60.0), round_trips)
    snapshot = fleet(64)

    first = store.view(snapshot)
    assert len(round_trips) == 1
    for _ in range(100):
        assert store.view(snapshot) is first
    assert len(round_trips) == 1


def test_the_cached_view_shows_this_workers_own_routing_at_once(make_store, round_trips):
    store = warm(make_store(lease=HELD, view_max_age_s=60.0), round_trips)
    snapshot = fleet(4)
    store.view(snapshot)

    store.record_routed("r1", ["svc-01", "svc-03"])
    assert store.view(snapshot).in_flight.tolist() == [0, 1, 0, 1]
    store.record_outcome("r1", "svc-01", True, 3.0)
    assert store.view(snapshot).in_flight.tolist() == [0, 0, 0, 1]
    assert len(round_trips) == 3  # refresh, routed, outcome: the views came from the cache


def test_scripts_lost_in_a_redis_restart_are_reloaded_transparently(private_redis):
    store = RedisStateStore(make_client(private_redis.url), key_prefix="t:", lease=HELD)
    store._client.script_flush()  # what a restart does to the script cache
    pipe = store.pipeline()
    pipe.set("t:marker", "1")

    store.record_routed("r1", ["svc-00"], pipe=pipe)
    assert store.execute(pipe) == [True, []]
    store._client.script_flush()
    assert store.record_outcome("r1", "svc-00", True, 4.0) is None
    store._client.script_flush()

    assert store.view(fleet(1)).ewma_latency_ms.tolist() == [4.0]
    assert store.snapshot_state()["svc-00"]["in_flight"] == 0
    assert not store.degraded


def test_a_fleet_of_2500_services_is_one_round_trip_too(make_store, round_trips):
    store = warm(make_store(lease=HELD, view_max_age_s=0.0), round_trips)
    snapshot = fleet(2500)
    store.record_routed_many([(f"r{i}", [s]) for i, s in enumerate(snapshot.service_ids)])
    round_trips.clear()

    view = store.view(snapshot)

    assert len(round_trips) == 1
    assert view.in_flight.tolist() == [1] * 2500
    assert len(store.snapshot_state()) == 2500
    assert store.view(fleet(0)).in_flight.tolist() == []
