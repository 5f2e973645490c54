"""When Redis dies mid-run the store carries on with local state, says so, and recovers.

Each test starts its own redis-server on a free port and kills that one (never the shared
server). Nothing here may raise: the caller must never see an error because of Redis.
"""

import signal
import threading
import time

import pytest

from routing.core import breaker as br
from routing.core.types import BreakerState
from telemetry.state.redis_store import RedisStateStore, make_client
from tests.telemetry.state.conftest import HELD, fleet

pytestmark = pytest.mark.integration  # real Redis

# Failures in a row that open a new service's breaker at the default settings (8).
RUN = br.failures_to_open(br.CLOSED_RECORD, br.BreakerConfig())


def worker(server, **options) -> RedisStateStore:
    options.setdefault("key_prefix", "moe:state:")
    options.setdefault("lease", HELD)  # these tests count in flight on the real clock
    return RedisStateStore(make_client(server.url), **options)


def wait_until_shared(store, snapshot, timeout=5.0) -> float:
    """Keep using the store (as traffic would) until it is back on Redis; returns how long."""
    started = time.monotonic()
    while store.degraded:
        assert time.monotonic() - started < timeout, store.status()
        time.sleep(0.05)
        store.view(snapshot)
    return time.monotonic() - started


def test_killing_redis_switches_to_local_state_without_an_error(private_redis):
    a = worker(private_redis, view_max_age_s=0.0)
    snapshot = fleet(2)
    a.record_routed("before", ["svc-00"])
    assert a.view(snapshot).in_flight.tolist() == [1, 0]

    private_redis.kill()
    a.record_routed("during", ["svc-01"])

    assert a.degraded
    status = a.status()
    assert status["degraded"] is True and status["status"] == "degraded"
    assert "Connection" in status["last_error"]
    # Local state from now on: the request routed before the outage is not there.
    assert a.view(snapshot).in_flight.tolist() == [0, 1]
    for i in range(RUN):
        a.record_outcome(f"f{i}", "svc-00", False, 100.0)
    assert a.view(snapshot).breaker_allows.tolist() == [False, True]
    assert a.breaker_record("svc-00").state is BreakerState.OPEN
    a.set_anomaly("svc-01", 0.7)
    a.force_breaker("svc-01", BreakerState.CLOSED)
    assert a.snapshot_state()["svc-01"]["anomaly"] == 0.7
    assert a.in_flight_requests() == 1
    a.remove_service("svc-01")


def test_a_callers_pipeline_is_counted_locally_when_redis_is_gone(private_redis):
    a = worker(private_redis, view_max_age_s=0.0)
    pipe = a.pipeline()
    pipe.set("moe:other", "x")
    a.record_routed("r1", ["svc-00"], pipe=pipe)

    private_redis.kill()

    assert a.execute(pipe) is None
    assert a.degraded
    assert a.view(fleet(1)).in_flight.tolist() == [1]
    pipe = a.pipeline()  # while degraded, nothing is even queued
    a.record_routed("r2", ["svc-00"], pipe=pipe)
    assert len(pipe.command_stack) == 0
    assert a.view(fleet(1)).in_flight.tolist() == [2]


def test_after_redis_returns_the_workers_share_state_again(private_redis):
    a = worker(private_redis)
    b = worker(private_redis)
    snapshot = fleet(2)
    private_redis.kill()
    a.record_routed("lonely", ["svc-00"])
    assert a.degraded

    private_redis.start()  # same port, empty: scripts and state are gone
    took = wait_until_shared(a, snapshot)

    assert took < 2.0  # retried about every second
    assert a.status()["degraded"] is False
    b.record_routed("from-b", ["svc-01"])
    for i in range(RUN):
        b.record_outcome(f"f{i}", "svc-00", False, 100.0)
    time.sleep(0.03)  # past A's view cache
    view = a.view(snapshot)
    assert view.in_flight.tolist() == [0, 1]
    assert view.breaker_allows.tolist() == [False, True]
    assert not b.degraded


def test_redis_is_retried_at_most_about_once_a_second(private_redis):
    a = worker(private_redis, view_max_age_s=0.0)
    private_redis.kill()
    a.view(fleet(1))
    attempts = []
    original = a._client.ping
    a._client.ping = lambda: attempts.append(time.monotonic()) or original()

    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        a.view(fleet(1))
        a.record_routed("r", ["svc-00"])
        time.sleep(0.005)

    assert 2 <= len(attempts) <= 3
    assert all(
        later - earlier >= 0.95 for earlier, later in zip(attempts, attempts[1:], strict=False)
    )
    assert a.degraded


def test_a_store_built_while_redis_is_down_starts_degraded_and_recovers(private_redis):
    private_redis.kill()
    a = worker(private_redis)
    assert a.degraded
    a.record_routed("r1", ["svc-00"])

    private_redis.start()

    wait_until_shared(a, fleet(1))
    a.record_routed("r2", ["svc-00"])
    assert a.snapshot_state()["svc-00"]["in_flight"] == 1


def test_routing_threads_see_no_error_while_redis_is_killed_and_restarted(private_redis):
    stores = [worker(private_redis), worker(private_redis)]
    snapshot = fleet(4)
    stop = threading.Event()
    errors, done = [], [0]

    def route(t: int) -> None:
        store = stores[t % 2]
        i = 0
        while not stop.is_set():
            try:
                store.view(snapshot)
                request_id = f"t{t}-{i}"
                store.record_routed(request_id, [f"svc-{i % 4:02d}"])
                store.record_outcome(request_id, f"svc-{i % 4:02d}", True, 5.0)
                done[0] += 1
            except Exception as exc:  # pragma: no cover - the assertion below reports it
                errors.append(exc)
            i += 1

    threads = [threading.Thread(target=route, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    private_redis.kill()
    time.sleep(0.3)
    degraded_during = [s.degraded for s in stores]
    private_redis.start()
    time.sleep(1.5)
    stop.set()
    for thread in threads:
        thread.join()

    assert errors == []
    assert done[0] > 100
    assert degraded_during == [True, True]
    assert [s.degraded for s in stores] == [False, False]


def test_a_frozen_redis_times_out_quickly_and_falls_back(private_redis):
    a = worker(private_redis, view_max_age_s=0.0)
    a.record_routed("r1", ["svc-00"])
    private_redis.process.send_signal(signal.SIGSTOP)  # accepts connections, never answers
    try:
        started = time.monotonic()
        a.record_routed("r2", ["svc-00"])
        took = time.monotonic() - started
        assert a.degraded
        assert took < 1.0  # socket timeout 0.25 s, no retry on timeouts
        assert a.view(fleet(1)).in_flight.tolist() == [1]
    finally:
        private_redis.process.send_signal(signal.SIGCONT)

    wait_until_shared(a, fleet(1))
    # r2 timed out, so Redis may have run it after all when it woke up (a timeout cannot
    # tell); its outcome releases it either way and r1 is still counted from Redis.
    assert a.view(fleet(1)).in_flight.tolist() in ([1], [2])
    a.record_outcome("r2", "svc-00", True, 1.0)
    assert a.view(fleet(1)).in_flight.tolist() == [1]


def test_a_breaker_open_in_redis_stays_open_in_the_fallback(private_redis):
    a = worker(private_redis)
    b = worker(private_redis)
    snapshot = fleet(3)
    b.force_breaker("svc-01", BreakerState.OPEN)
    b.set_anomaly("svc-02", 0.4)
    assert a.view(snapshot).breaker_allows.tolist() == [True, False, True]

    private_redis.kill()
    a.record_routed("r1", ["svc-00"])

    assert a.degraded
    view = a.view(snapshot)
    assert view.breaker_allows.tolist() == [True, False, True]
    assert view.anomaly.tolist() == [0.0, 0.0, 0.4]
    assert a.breaker_record("svc-01").state is BreakerState.OPEN


def test_breaker_transitions_are_reported_before_and_during_an_outage(private_redis):
    seen = []
    a = worker(private_redis)
    a.on_transition = lambda *transition: seen.append(transition)  # set after construction
    for i in range(RUN):
        a.record_outcome(f"f{i}", "svc-00", False, None)

    private_redis.kill()
    for i in range(RUN):
        a.record_outcome(f"g{i}", "svc-01", False, None)

    assert a.degraded
    assert seen == [
        ("svc-00", BreakerState.CLOSED, BreakerState.OPEN),  # through Redis
        ("svc-01", BreakerState.CLOSED, BreakerState.OPEN),  # locally, while degraded
    ]
