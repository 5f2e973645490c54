"""A 429 with ``Retry-After`` that one worker gets keeps every worker sharing its Redis off the
service until then, not only that worker (routing/shared_cooldowns.py): the others read the
cool-down from the stream ``moe:cooldowns`` in their follower thread, and the route decision
still reads a local dict.

Worker A is the process's router, answering the API (``"forward": true`` and the proxy, both
with real loopback backends); workers B and C are routers with cool-downs of their own, as
other worker processes have. Real Redis: the PostgreSQL + Redis pass (without Redis a
cool-down is the worker's own, tests/routing/proxy/test_a_service_cooling_down_after_a_429_*)."""

import logging
import socket
import time
from contextlib import contextmanager

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from routing.core.strategies import STRATEGY_NAMES
from routing.forwarding import Cooldowns, cooldowns
from routing.runtime import Router, get_router
from routing.shared_cooldowns import COOLDOWN_KEY, queue_cooldown
from routing.validation import parse_request_data
from tests.support import waiting
from tests.support.requirements import missing

pytestmark = pytest.mark.django_db(transaction=True)

# A follower applies an entry within milliseconds; this bounds the wait on a loaded machine.
PROPAGATION_S = 2.0


@pytest.fixture
def shared_redis(settings):
    if not settings.REDIS_URL:
        pytest.skip("runs in the PostgreSQL + Redis pass (no other worker shares a cool-down)")
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=0.5)
    try:
        client.ping()
    except redis.RedisError as exc:
        missing(f"no Redis at {settings.REDIS_URL}: {exc}")
    yield client
    client.close()


@pytest.fixture
def worker(shared_redis):
    """``worker()``: another web worker on the same Redis, its follower started and caught
    up with the cool-downs in force."""
    started: list[Router] = []

    def start() -> Router:
        router = Router(cooldowns=Cooldowns())
        started.append(router)
        assert router._follower.ready.wait(5)
        return router

    yield start
    for router in started:
        router.close()


def wait_for(condition, timeout=PROPAGATION_S) -> bool:
    return waiting.wait_for(condition, timeout, interval=0.005)


def chosen(router, capability, strategy="semantic", n=5) -> set[str]:
    """The services ``router`` selects for ``n`` requests only ``capability`` services serve;
    each request's outcome is reported (its lease released: the fleet stays idle)."""
    request = parse_request_data({"capabilities": [capability], "data": {"q": 1}, "key": "k"})
    routed = router.route_batch([request] * n, strategy, None)
    for one in routed:
        for service_id in one.decision.selected:
            router.report_outcome(one.request_id, service_id, True, 5.0, 200)
    return {s for one in routed for s in one.decision.selected}


def forward_to_first_choice(client_api, capability):
    """``"forward": true`` through worker A; semantic's first choice on an idle fleet: "a-..."."""
    body = {
        "data": {"capabilities": [capability], "data": {"q": 1}},
        "routing_strategy": "semantic",
        "forward": True,
    }
    return client_api.post("/api/v1/route", body, format="json")


def answer_429(backend, retry_after: str) -> None:
    backend.mode, backend.status, backend.retry_after = "status", 429, retry_after


def test_a_429_one_worker_gets_keeps_every_other_worker_off_the_service(
    client_api, fleet, capability, worker
):
    # given: B would send these requests to the limited service
    limited, other = fleet(2)
    b = worker()
    assert chosen(b, capability, n=1) == {limited.name}

    # when: A forwards a call to it, answered 429 Retry-After: 30
    answer_429(limited, "30")
    forward_to_first_choice(client_api, capability)
    assert cooldowns.cooling(limited.name)  # A's own, at once

    # then: B leaves it out too, within moments, whatever the strategy
    assert wait_for(lambda: b.cooldowns.cooling(limited.name))
    for strategy in STRATEGY_NAMES:
        assert chosen(b, capability, strategy) == {other.name}, strategy
    live = b.live_states([limited.name, other.name])
    assert live[limited.name]["cooling_down"] and not live[other.name]["cooling_down"]
    assert b._follower.cooldowns_applied == 1


@pytest.mark.asyncio
async def test_a_429_relayed_by_the_proxy_reaches_the_other_workers(proxy, afleet, worker):
    from asgiref.sync import sync_to_async

    limited, other = await afleet(2)
    b = await sync_to_async(worker)()
    answer_429(limited, "30")

    response = await proxy.get("/api/v1/proxy/items", headers={"X-Moe-Strategy": "semantic"})

    assert response.status_code == 200 and response["X-Moe-Service"] == other.name
    assert limited.hits == 1
    assert wait_for(lambda: b.cooldowns.cooling(limited.name))


def test_every_worker_routes_to_it_again_once_its_retry_after_is_over(
    client_api, fleet, capability, worker
):
    # given: the limited service is the only one able to serve "only-<capability>" requests
    only = f"only-{capability}"
    (limited,) = fleet(1, capabilities=[capability, only])
    fleet(1)
    b = worker()
    answer_429(limited, "2")

    # when
    forward_to_first_choice(client_api, only)
    deadline = time.monotonic() + 2.0
    assert wait_for(lambda: b.cooldowns.cooling(limited.name))

    # then: B has no service for them until the Retry-After is over, then routes to it again
    while time.monotonic() < deadline - 0.3:
        assert chosen(b, only, n=1) == set()
        time.sleep(0.1)
    assert wait_for(lambda: chosen(b, only, n=1) == {limited.name}, timeout=1.5)
    assert time.monotonic() > deadline - 0.3


def test_a_worker_started_after_the_429_honours_it(client_api, fleet, capability, worker):
    limited, other = fleet(2)
    answer_429(limited, "30")
    forward_to_first_choice(client_api, capability)
    assert wait_for(lambda: get_router()._cooldown_publisher.published == 1)

    c = worker()  # its follower is ready: the cool-downs in force are applied

    assert c.cooldowns.cooling(limited.name)
    assert chosen(c, capability) == {other.name}


def test_a_workers_own_entries_are_not_applied_again(worker, shared_redis):
    b = worker()
    pipe = shared_redis.pipeline(transaction=False)
    queue_cooldown(pipe, b._prefix, "svc-own", time.time() + 30)  # as if B had published it
    queue_cooldown(pipe, "another-worker", "svc-marker", time.time() + 30)
    pipe.execute()

    assert wait_for(lambda: b.cooldowns.cooling("svc-marker"))  # read past the first one

    assert not b.cooldowns.cooling("svc-own")
    assert b._follower.cooldowns_applied == 1


def test_a_malformed_entry_is_skipped_with_a_warning(worker, shared_redis, caplog):
    caplog.set_level(logging.WARNING, logger="routing.shared_cooldowns")
    b = worker()
    now = time.time()
    for fields in (
        {"w": "x", "s": "svc-no-deadline"},
        {"w": "x", "u": repr(now + 30)},
        {"w": "x", "s": "svc-text", "u": "soon"},
        {"w": "x", "s": "svc-nan", "u": "nan"},
        {"w": "x", "s": b"\xff\xfe", "u": repr(now + 30)},
    ):
        shared_redis.xadd(COOLDOWN_KEY, fields)
    shared_redis.xadd(COOLDOWN_KEY, {"w": "x", "s": "svc-marker", "u": repr(now + 30)})

    assert wait_for(lambda: b.cooldowns.cooling("svc-marker"))

    assert b._follower.is_alive() and b._follower.cooldowns_applied == 1
    for sid in ("svc-no-deadline", "svc-text", "svc-nan"):
        assert not b.cooldowns.cooling(sid)
    skipped = [r for r in caplog.records if "malformed entry" in r.getMessage()]
    assert len(skipped) == 5


def test_past_deadlines_are_ignored_and_long_ones_capped_by_the_receiving_worker(
    worker, shared_redis, settings
):
    settings.MOE_PROXY_MAX_COOLDOWN_SECONDS = 5.0
    b = worker()
    pipe = shared_redis.pipeline(transaction=False)
    queue_cooldown(pipe, "another-worker", "svc-over", time.time() - 1)
    queue_cooldown(pipe, "another-worker", "svc-long", time.time() + 3600)
    pipe.execute()

    assert wait_for(lambda: b.cooldowns.cooling("svc-long"))

    assert not b.cooldowns.cooling("svc-over")
    assert b.cooldowns._until["svc-long"] <= b.cooldowns.clock() + 5.0


def test_without_shared_learning_cooldowns_are_still_shared(
    client_api, fleet, capability, worker, settings
):
    settings.MOE_SHARED_LEARNING = False
    limited, other = fleet(2)
    b = worker()
    answer_429(limited, "30")

    forward_to_first_choice(client_api, capability)

    assert wait_for(lambda: b.cooldowns.cooling(limited.name))
    assert not b._follower.learns


@contextmanager
def redis_hanging(router):
    """The router's Redis client goes to a port that accepts connections and never answers."""
    silent = socket.create_server(("127.0.0.1", 0))
    working = router.redis_client
    router.redis_client = redis.Redis(
        port=silent.getsockname()[1],
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        yield
    finally:
        router.redis_client = working
        silent.close()


def test_an_unreachable_redis_neither_delays_nor_fails_the_429_and_it_is_shared_later(
    client_api, fleet, capability, worker
):
    # given
    (limited,) = fleet(1)
    b = worker()
    a = get_router()

    # when: A cools the service down while its Redis hangs
    with redis_hanging(a):
        started = time.perf_counter()
        a.start_cooldown(limited.name, 30.0)
        took = time.perf_counter() - started
        time.sleep(0.3)
        # then: at once, no exception, and A leaves it out at once
        assert took < 0.05, took
        assert a.cooldowns.cooling(limited.name)
        assert not b.cooldowns.cooling(limited.name)

    # and once Redis answers, B learns of it (the publisher tries again)
    assert wait_for(lambda: b.cooldowns.cooling(limited.name), timeout=4.0)
