"""A refresh that overlaps this process's own routes and outcomes counts each of them once.

A worker applies its own routed and finished requests to its cached view at once (so it does
not wait a refresh to see them), and a refresh replaces the cached counts with what Redis
holds. When the refresh is sent on one connection and a route or an outcome commits on
another, Redis may run the route's script before the view's read while the route's local
delta lands after the refresh began: the view then counts that request twice (or an outcome's
release twice). That one phantom request in flight was enough for bounded-load consistent
hashing on a quiet two-service fleet to move a key off its service (a CI run's breaker test
saw it). Each script's place in Redis's order now decides whether the view already holds it.
"""

import pytest

from tests.telemetry.state.conftest import HELD, fleet

pytestmark = pytest.mark.integration  # real Redis

MAX_AGE = 60.0  # the cached view never ages out by itself here: only the refreshes we run


def stale(store, snapshot) -> None:
    """Make the cached view due for a refresh, without waiting."""
    (cache,) = [c for c in store._caches.values() if c.snapshot is snapshot]
    cache.fetched_at -= MAX_AGE


def in_flight(store, snapshot) -> list[float]:
    return store.view(snapshot).in_flight.tolist()


def test_a_route_committed_while_a_refresh_is_in_the_air_counts_once(make_store):
    worker, other = make_store(view_max_age_s=MAX_AGE, lease=HELD), make_store(lease=HELD)
    snapshot = fleet(2)
    other.record_routed("b-1", ["svc-00"])
    assert in_flight(worker, snapshot) == [1.0, 0.0]

    stale(worker, snapshot)
    refresh = worker.pipeline()
    assert worker.queue_refresh(refresh, snapshot)  # begun, not yet sent
    worker.record_routed("a-1", ["svc-00"])  # Redis runs it before the view's read
    worker.execute(refresh)
    assert worker.snapshot_state()["svc-00"]["in_flight"] == 2

    assert in_flight(worker, snapshot) == [2.0, 0.0]


def test_an_outcome_committed_while_a_refresh_is_in_the_air_counts_once(make_store):
    worker = make_store(view_max_age_s=MAX_AGE, lease=HELD)
    snapshot = fleet(2)
    worker.record_routed("a-1", ["svc-00"])
    worker.record_routed("a-2", ["svc-00"])
    assert in_flight(worker, snapshot) == [2.0, 0.0]

    stale(worker, snapshot)
    refresh = worker.pipeline()
    assert worker.queue_refresh(refresh, snapshot)
    worker.record_outcome("a-1", "svc-00", True, 5.0)
    worker.execute(refresh)

    assert in_flight(worker, snapshot) == [1.0, 0.0]


def test_a_route_counted_in_redis_after_the_views_read_still_shows(make_store):
    worker = make_store(view_max_age_s=MAX_AGE, lease=HELD)
    snapshot = fleet(2)
    assert in_flight(worker, snapshot) == [0.0, 0.0]

    stale(worker, snapshot)
    refresh = worker.pipeline()
    assert worker.queue_refresh(refresh, snapshot)
    worker.execute(refresh)  # the view reads Redis first ...
    worker.record_routed("a-1", ["svc-00"])  # ... then this one commits

    assert in_flight(worker, snapshot) == [1.0, 0.0]


def test_a_route_read_by_a_refresh_that_finished_before_its_own_reply_counts_once(make_store):
    """The route's script runs, a refresh reads and installs, and only then does the route's
    reply reach this process (the order a loop's timer and a thread's commit can take)."""
    worker = make_store(view_max_age_s=MAX_AGE, lease=HELD)
    snapshot = fleet(2)
    assert in_flight(worker, snapshot) == [0.0, 0.0]

    commit = worker.pipeline()
    worker.record_routed("a-1", ["svc-00"], pipe=commit)
    queued = worker._take_queued(commit)
    results = worker._run_pipeline(commit)  # in Redis now; its reply not yet absorbed
    stale(worker, snapshot)
    assert in_flight(worker, snapshot) == [1.0, 0.0]  # view() refreshes: Redis has it
    worker._finish(results, queued)

    assert in_flight(worker, snapshot) == [1.0, 0.0]


def test_an_older_refresh_never_replaces_a_newer_view(make_store):
    worker, other = make_store(view_max_age_s=MAX_AGE, lease=HELD), make_store(lease=HELD)
    snapshot = fleet(2)
    assert in_flight(worker, snapshot) == [0.0, 0.0]

    stale(worker, snapshot)
    older = worker.pipeline()
    assert worker.queue_refresh(older, snapshot)
    queued = worker._take_queued(older)
    results = worker._run_pipeline(older)  # read before b-1; its reply not yet installed
    other.record_routed("b-1", ["svc-01"])
    stale(worker, snapshot)
    assert in_flight(worker, snapshot) == [0.0, 1.0]  # a newer refresh, in view()
    worker._finish(results, queued)  # the older reply arrives last

    assert in_flight(worker, snapshot) == [0.0, 1.0]


def test_a_process_that_only_takes_outcomes_keeps_a_bounded_record(make_store):
    worker = make_store(view_max_age_s=MAX_AGE, lease=HELD)
    snapshot = fleet(2)
    n = 3000
    worker.record_routed_many([(f"a-{j}", ["svc-00"]) for j in range(n)])
    assert in_flight(worker, snapshot) == [float(n), 0.0]

    for j in range(n - 1):  # never a refresh among them
        worker.record_outcome(f"a-{j}", "svc-00", True, 5.0)

    (cache,) = worker._caches.values()
    assert len(cache.changes) <= 1025
    assert in_flight(worker, snapshot) == [1.0, 0.0]
    stale(worker, snapshot)
    assert in_flight(worker, snapshot) == [1.0, 0.0]


def test_threads_routing_and_reporting_through_constant_refreshes_leave_an_exact_view(make_store):
    """Four threads route and report on one store while a fifth refreshes the view on its own
    pipelines as fast as it can: once they stop, the cached view plus this process's own
    changes equals what Redis holds, service by service."""
    import random
    import threading

    worker = make_store(view_max_age_s=MAX_AGE, lease=HELD)
    snapshot = fleet(4)
    in_flight(worker, snapshot)
    stop = threading.Event()
    errors: list[BaseException] = []

    def refresher():
        try:
            while not stop.is_set():
                stale(worker, snapshot)
                if random.random() < 0.5:
                    pipe = worker.pipeline()
                    if worker.queue_refresh(pipe, snapshot):
                        worker.execute(pipe)
                else:
                    worker.view(snapshot)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def client(name: str):
        try:
            rng = random.Random(name)
            held: list[tuple[str, str]] = []
            for j in range(300):
                if held and rng.random() < 0.45:
                    request_id, service_id = held.pop(rng.randrange(len(held)))
                    worker.record_outcome(request_id, service_id, True, 5.0)
                else:
                    service_id = f"svc-{rng.randrange(4):02d}"
                    worker.record_routed(f"{name}-{j}", [service_id])
                    held.append((f"{name}-{j}", service_id))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    refreshing = threading.Thread(target=refresher)
    clients = [threading.Thread(target=client, args=(f"c{n}",)) for n in range(4)]
    refreshing.start()
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    stop.set()
    refreshing.join()
    assert not errors, errors

    truth = worker.snapshot_state()
    expected = [float(truth.get(s, {}).get("in_flight", 0)) for s in snapshot.service_ids]
    assert sum(expected) > 0
    assert in_flight(worker, snapshot) == expected
