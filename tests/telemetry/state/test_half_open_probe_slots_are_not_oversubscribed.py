"""Half-open probe slots are taken atomically: N workers never send N x max_probes probes."""

import threading

import pytest

from routing.core.breaker import BreakerConfig
from routing.core.types import BreakerState
from telemetry.state.redis_store import Refused
from tests.telemetry.state.conftest import FakeClock

pytestmark = pytest.mark.integration  # real Redis

CONFIG = BreakerConfig(half_open_max_probes=3, successes_to_close=2, probe_timeout_s=30.0)


def dispatch_from_threads(workers, service_id: str, per_thread: int = 25) -> list[str]:
    """Every thread routes ``per_thread`` requests to the service; returns the accepted ids."""
    accepted: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(len(workers) * 2)

    def work(t: int) -> None:
        store = workers[t % len(workers)]
        start.wait()
        for i in range(per_thread):
            request_id = f"t{t}-r{i}"
            if not store.record_routed(request_id, [service_id]):
                with lock:
                    accepted.append(request_id)

    pool = [threading.Thread(target=work, args=(t,)) for t in range(len(workers) * 2)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return accepted


def test_two_workers_share_the_probe_slots_of_a_half_open_breaker(make_store):
    clock = FakeClock()
    a, b = (make_store(breaker_config=CONFIG, clock=clock) for _ in range(2))
    a.force_breaker("svc-00", BreakerState.HALF_OPEN)

    accepted = dispatch_from_threads([a, b], "svc-00")

    assert len(accepted) == 3
    assert b.breaker_record("svc-00").probes_in_flight == 3
    assert a.snapshot_state()["svc-00"]["in_flight"] == 3  # refused dispatches are not counted


def test_the_first_dispatch_after_the_backoff_is_one_of_the_probes(make_store):
    clock = FakeClock()
    a, b = (make_store(breaker_config=CONFIG, clock=clock) for _ in range(2))
    a.force_breaker("svc-00", BreakerState.OPEN)
    clock.advance(CONFIG.base_open_s)  # open -> the next dispatch turns it half-open

    accepted = dispatch_from_threads([a, b], "svc-00")

    assert len(accepted) == 3
    assert a.breaker_record("svc-00").state is BreakerState.HALF_OPEN


def test_a_finished_probe_frees_its_slot_for_the_next_one(make_store):
    clock = FakeClock()
    a, b = (make_store(breaker_config=CONFIG, clock=clock) for _ in range(2))
    a.force_breaker("svc-00", BreakerState.HALF_OPEN)
    probes = [f"p{i}" for i in range(3)]
    for probe in probes:
        assert a.record_routed(probe, ["svc-00"]) == ()
    assert b.record_routed("extra", ["svc-00"]) == ("svc-00",)

    assert b.record_outcome("p0", "svc-00", True, 5.0) is None

    assert b.record_routed("extra", ["svc-00"]) == ()
    assert b.record_routed("one-more", ["svc-00"]) == ("svc-00",)
    assert a.record_outcome("p1", "svc-00", True, 5.0) is BreakerState.CLOSED


def test_a_lost_probe_frees_the_slots_after_the_probe_timeout(make_store):
    clock = FakeClock()
    a, b = (make_store(breaker_config=CONFIG, clock=clock) for _ in range(2))
    a.force_breaker("svc-00", BreakerState.HALF_OPEN)
    for i in range(3):
        a.record_routed(f"p{i}", ["svc-00"])
    assert b.record_routed("extra", ["svc-00"]) == ("svc-00",)

    clock.advance(CONFIG.probe_timeout_s)

    assert b.record_routed("extra", ["svc-00"]) == ()
    assert b.breaker_record("svc-00").probes_in_flight == 1


def test_refusals_reach_the_caller_through_its_pipeline(make_store):
    clock = FakeClock()
    store = make_store(breaker_config=CONFIG, clock=clock)
    store.force_breaker("svc-00", BreakerState.OPEN)
    pipe = store.pipeline()
    pipe.incr(f"{store.key_prefix}counter")

    store.record_routed_many([("r1", ["svc-00", "svc-01"]), ("r2", ["svc-01"])], pipe=pipe)
    results = store.execute(pipe)

    assert results == [1, [("r1", "svc-00")]]
    assert isinstance(results[1], Refused)
    assert store.snapshot_state()["svc-01"]["in_flight"] == 2
