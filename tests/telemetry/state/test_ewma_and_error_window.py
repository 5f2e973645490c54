"""Outcomes update the EWMA latency and the error window atomically, whichever worker reports."""

import threading

import pytest

from tests.telemetry.state.conftest import fleet

pytestmark = pytest.mark.integration  # real Redis


def expected_ewma(latencies, alpha=0.2):
    ewma = 0.0
    for latency in latencies:
        ewma = latency if ewma == 0.0 else alpha * latency + (1 - alpha) * ewma
    return ewma


def test_outcomes_from_two_workers_build_one_ewma(make_store):
    a, b = make_store(), make_store(view_max_age_s=0.0)
    latencies = [120.0, 80.0, 95.5, 300.0, 10.25, 47.0]

    for i, latency in enumerate(latencies):
        (a if i % 2 else b).record_outcome(f"r{i}", "svc-00", True, latency)

    assert b.view(fleet(1)).ewma_latency_ms[0] == expected_ewma(latencies)


def test_the_error_window_keeps_the_last_outcomes_of_all_workers(make_store):
    a, b = make_store(error_window=10), make_store(error_window=10, view_max_age_s=0.0)
    for i in range(10):
        a.record_outcome(f"a{i}", "svc-00", False, None)  # 10 failures: window full of them
    for i in range(4):
        b.record_outcome(f"b{i}", "svc-00", True, None)  # push 4 failures out

    assert b.view(fleet(1)).error_rate[0] == 0.6
    assert b.view(fleet(1)).ewma_latency_ms[0] == 0.0  # no latency was reported


def test_concurrent_outcomes_lose_no_update(make_store, key_prefix):
    workers = [make_store(error_window=1000) for _ in range(2)]
    threads, per_thread = 8, 50

    def work(t: int) -> None:
        for i in range(per_thread):
            success = (t * per_thread + i) % 4 != 0  # exactly one failure in four
            workers[t % 2].record_outcome(f"t{t}-{i}", "svc-00", success, 40.0)

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()

    state = make_store(error_window=1000).snapshot_state()["svc-00"]
    assert state["error_rate"] == 0.25
    assert state["ewma_latency_ms"] == 40.0
    window = workers[0]._client.hget(f"{key_prefix}live", "svc-00|ws")
    assert len(window) == threads * per_thread
