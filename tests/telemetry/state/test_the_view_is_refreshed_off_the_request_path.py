"""A busy worker's view of shared state is refreshed without a round trip of its own.

Past half its maximum age, the cached view is refreshed on the router's commit pipeline
(``queue_refresh``) or by a timer (``refresh_ahead``); after either, ``view()`` serves another
worker's breaker change without reading Redis. And a rate-limit guard on the commit makes a
request over the limit leave no trace: nothing in flight, none of the guarded writes.
"""

import time

import pytest

from routing.core.types import BreakerState
from telemetry.state.redis_store import Refused
from tests.telemetry.state.conftest import HELD, fleet

pytestmark = pytest.mark.integration  # real Redis

MAX_AGE = 0.4


def no_reads(store, monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("view() read Redis on the request path")

    monkeypatch.setattr(store, "_eval", refuse)


def test_a_commit_past_half_the_age_carries_the_refresh(make_store, monkeypatch):
    worker, other = make_store(view_max_age_s=MAX_AGE), make_store()
    snapshot = fleet(3)
    assert worker.view(snapshot).breaker_allows.all()
    pipe = worker.pipeline()
    assert not worker.queue_refresh(pipe, snapshot)  # still fresh: nothing queued
    time.sleep(MAX_AGE / 2 + 0.02)
    other.force_breaker("svc-01", BreakerState.OPEN)

    assert worker.queue_refresh(pipe, snapshot)
    worker.record_routed("r1", ["svc-00"], pipe=pipe)
    worker.execute(pipe)

    no_reads(worker, monkeypatch)
    view = worker.view(snapshot)
    assert view.breaker_allows.tolist() == [True, False, True]
    assert view.in_flight.tolist() == [1.0, 0.0, 0.0]  # the routed request counted once


def test_the_timer_refreshes_ahead_of_the_request(make_store, monkeypatch):
    worker, other = make_store(view_max_age_s=MAX_AGE), make_store()
    snapshot = fleet(3)
    worker.view(snapshot)
    time.sleep(MAX_AGE / 2 + 0.02)
    other.force_breaker("svc-02", BreakerState.OPEN)

    worker.refresh_ahead(snapshot)

    no_reads(worker, monkeypatch)
    assert worker.view(snapshot).breaker_allows.tolist() == [True, True, False]


def test_a_guarded_commit_over_the_limit_writes_nothing(make_store, key_prefix):
    store = make_store(lease=HELD)
    counter, marker = f"{key_prefix}rate", f"{key_prefix}marker"
    store._client.set(counter, 5)

    def commit(limit: int):
        pipe = store.pipeline(transaction=True)
        pipe.incr(counter)
        store.record_routed_many([("r1", ["svc-00"])], pipe=pipe, guard=(counter, limit))
        store.queue_guarded(pipe, (counter, limit), [("SET", marker, "written")])
        return store.execute(pipe)

    over = commit(limit=5)

    # The guarded SET rides on the routed script's call: one script call per route.
    assert over == [6, Refused()]
    assert store._client.get(marker) is None
    assert store.snapshot_state().get("svc-00", {}).get("in_flight", 0) == 0

    within = commit(limit=10)

    assert within == [7, Refused()]
    assert store._client.get(marker) == b"written"
    assert store.snapshot_state()["svc-00"]["in_flight"] == 1


def test_guarded_writes_without_a_dispatch_are_guarded_too(make_store, key_prefix):
    # given: nothing routed (no eligible service), so no routed call to ride on
    store = make_store(lease=HELD)
    counter, marker = f"{key_prefix}rate", f"{key_prefix}marker"
    store._client.set(counter, 5)

    def commit(limit: int):
        pipe = store.pipeline(transaction=True)
        pipe.incr(counter)
        store.queue_guarded(pipe, (counter, limit), [("SET", marker, "written")])
        return store.execute(pipe)

    # when / then
    assert commit(limit=5) == [6, 0]
    assert store._client.get(marker) is None
    assert commit(limit=10) == [7, 1]
    assert store._client.get(marker) == b"written"
