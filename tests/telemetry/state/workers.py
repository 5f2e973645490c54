"""Code that runs in separate worker processes (spawned, so nothing is shared but Redis)."""

from __future__ import annotations

import time

from telemetry.state.redis_store import RedisStateStore, make_client
from tests.telemetry.state.conftest import HELD, fleet


def route_and_finish(url: str, prefix: str, worker: int, requests: int, services: list[str]):
    """Route ``requests`` requests over ``services`` (one pipelined call per 50), then report an
    outcome for every even-numbered one. Returns how many were reported."""
    store = RedisStateStore(make_client(url), key_prefix=prefix, lease=HELD)
    ids = [f"w{worker}-r{i}" for i in range(requests)]
    for start in range(0, requests, 50):
        pipe = store.pipeline()
        store.record_routed_many([(rid, services) for rid in ids[start : start + 50]], pipe=pipe)
        assert store.execute(pipe) is not None
    finished = 0
    for i, rid in enumerate(ids):
        if i % 2 == 0:
            for service_id in services:
                store.record_outcome(rid, service_id, True, 1.0)
            finished += 1
    return finished


def wait_until_excluded(url: str, prefix: str, n_services: int, index: int, ready, found):
    """Worker B: poll view() about every 0.5 ms; put the wall time at which service ``index``
    is first excluded on ``found``."""
    store = RedisStateStore(make_client(url), key_prefix=prefix)
    snapshot = fleet(n_services)
    store.view(snapshot)
    ready.set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if not store.view(snapshot).breaker_allows[index]:
            found.put(time.time())
            return
        time.sleep(0.0005)
    found.put(None)
