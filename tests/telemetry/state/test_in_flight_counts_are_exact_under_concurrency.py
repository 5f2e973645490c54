"""In-flight counts stay exact when many threads and several processes route at once."""

import multiprocessing
import threading
import time

import pytest

from tests.telemetry.state.conftest import HELD, fleet
from tests.telemetry.state.workers import route_and_finish

pytestmark = pytest.mark.integration  # real Redis

SERVICES = ["svc-00", "svc-01", "svc-02"]


def test_many_threads_on_two_workers_lose_no_update(make_store):
    workers = [make_store(lease=HELD), make_store(lease=HELD)]
    snapshot = fleet(3)
    threads, per_thread = 8, 150
    errors = []

    def work(t: int) -> None:
        store = workers[t % 2]
        try:
            for i in range(per_thread):
                rid = f"t{t}-r{i}"
                store.record_routed(rid, ["svc-00", "svc-01"] if i % 2 else ["svc-02"])
                if i % 3 == 0:
                    store.record_outcome(rid, "svc-02" if i % 2 == 0 else "svc-00", True, 2.0)
                store.view(snapshot)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()

    assert errors == []
    odd = [i for i in range(per_thread) if i % 2]
    even = [i for i in range(per_thread) if i % 2 == 0]
    expected = [
        threads * sum(1 for i in odd if i % 3),  # svc-00 released on odd multiples of 3
        threads * len(odd),
        threads * sum(1 for i in even if i % 3),
    ]
    reader = make_store(lease=HELD, view_max_age_s=0.0)
    assert reader.view(snapshot).in_flight.tolist() == expected
    finished_everywhere = sum(1 for i in even if i % 3 == 0)
    assert reader.in_flight_requests() == threads * (per_thread - finished_everywhere)
    # The workers' own cached views (with their local deltas) settle on the same numbers.
    time.sleep(0.03)
    for store in workers:
        assert store.view(snapshot).in_flight.tolist() == expected


def test_several_processes_routing_at_once_give_exact_counts(make_store, redis_url, key_prefix):
    processes, per_process = 3, 400
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        jobs = [
            pool.apply_async(route_and_finish, (redis_url, key_prefix, w, per_process, SERVICES))
            for w in range(processes)
        ]
        finished = sum(job.get(timeout=120) for job in jobs)

    assert finished == processes * per_process // 2
    left = processes * per_process - finished
    reader = make_store(lease=HELD, view_max_age_s=0.0)
    assert reader.view(fleet(3)).in_flight.tolist() == [left, left, left]
    assert reader.in_flight_requests() == left
