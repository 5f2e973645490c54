"""Redis round trips per request, counted at the socket, through HTTP: what the README states.

A uvicorn worker on the scratch PostgreSQL database talks to Redis through a counting TCP
proxy (tests/support/redis_counter.py). After a few warm-up routes (the first request of a
worker loads the fleet and reads the shared state), one ``POST /api/v1/route`` costs exactly
one round trip: the rate-limit counter, the in-flight/breaker script, the pending outcome
entry, the history record and the metrics in one MULTI/EXEC. Reporting that request's outcome
then costs the round trips counted below (the outcome's history record and its entry for the
other workers' learners share one), and a batch two. The live feed's channel-layer traffic
(``moe:ws`` keys, coalesced in the background, not per request) and the shared-learning
follower's reads (its own connection and thread) are told apart and not counted.

The worker's view of shared state is given a long maximum age, so that no refresh falls in the
measured window by chance: the refresh itself rides on commits or a timer (see
telemetry/state/redis_store.py and
tests/telemetry/state/test_the_view_is_refreshed_off_the_request_path.py).
"""

from urllib.parse import urlsplit

import httpx
import pytest

from tests.integration.stack import WebServer, forget, obtain_token
from tests.support.redis_counter import RedisRoundTripCounter

pytestmark = pytest.mark.integration

ROUTE_ROUND_TRIPS = 1  # README: "one pipelined round trip per routed request"
OUTCOME_ROUND_TRIPS = 5  # README: rate limit, claim, state, history (+ shared learning), metrics
BATCH_ROUND_TRIPS = 2  # README: the batch's rate limit, then one pipeline for all of it


@pytest.fixture
def counted_worker(scaleout):
    target = urlsplit(scaleout.redis_url)
    counter = RedisRoundTripCounter((target.hostname, target.port or 6379))
    env = scaleout.env(MOE_STATE_VIEW_MAX_AGE_MS="60000")
    env["REDIS_URL"] = counter.url(int(target.path.strip("/") or 0))
    worker = WebServer("web-counted", env, scaleout.log_dir)
    try:
        worker.wait_ready()
        yield worker, counter
    finally:
        worker.stop()
        forget([worker])
        counter.close()


def described(exchanges) -> str:
    return "; ".join(f"connection {e.connection}: {' '.join(e.commands)}" for e in exchanges)


def request_path(exchanges):
    return [e for e in exchanges if not e.mentions(b"moe:ws") and not follows_learning(e)]


def follows_learning(exchange) -> bool:
    """The follower's own reads (a background thread with its own connection,
    routing/shared_learning.py): an XREAD that returns when an outcome or a 429 cool-down is
    appended, and the XREVRANGEs that find where to start."""
    return set(exchange.commands) <= {"XREAD", "XREVRANGE"} and (
        exchange.mentions(b"moe:learn") or exchange.mentions(b"moe:cooldowns")
    )


def measured(counter, call):
    import time

    time.sleep(0.3)  # whatever the previous request set off in the background is over
    start = time.monotonic()
    response = call()
    time.sleep(0.3)
    return response, request_path(counter.since(start))


def test_route_then_outcome_round_trips(counted_worker):
    worker, counter = counted_worker
    token = obtain_token(worker.url)
    client = httpx.Client(
        base_url=worker.url, headers={"Authorization": f"Bearer {token}"}, timeout=15
    )
    body = {"data": {"type": "inference"}, "routing_strategy": "power_of_two"}

    def outcome(answer):
        return client.post(
            f"/api/v1/route/{answer['request_id']}/outcome",
            json={"service_id": answer["selected_services"][0], "success": True},
        )

    # Warm-up: the first route and outcome of a worker also open its Redis connections.
    for _ in range(3):
        warm = client.post("/api/v1/route", json=body)
        assert outcome(warm.json()).status_code == 200

    routed, route_trips = measured(counter, lambda: client.post("/api/v1/route", json=body))

    assert routed.status_code == 200, routed.text
    assert len(route_trips) == ROUTE_ROUND_TRIPS, described(route_trips)
    commands = route_trips[0].commands
    assert commands[0] == "MULTI" and commands[-1] == "EXEC", commands
    assert {"INCRBY", "EXPIRE", "EVALSHA"} <= set(commands), commands

    answer = routed.json()
    reported, outcome_trips = measured(counter, lambda: outcome(answer))

    assert reported.status_code == 200, reported.text
    assert len(outcome_trips) == OUTCOME_ROUND_TRIPS, described(outcome_trips)
    # The history record and the entry for the other workers' learners: one exchange.
    shared = [e for e in outcome_trips if e.mentions(b"moe:learn")]
    assert [e.commands for e in shared] == [["XADD", "XADD"]], described(outcome_trips)

    batch = {"requests": [body["data"]] * 50, "routing_strategy": "power_of_two"}
    # Warm-up: a worker's first batch also opens the connection its loop awaits commits on.
    assert client.post("/api/v1/route/batch", json=batch).status_code == 200
    batched, batch_trips = measured(counter, lambda: client.post("/api/v1/route/batch", json=batch))

    assert batched.status_code == 200, batched.text
    assert batched.json()["count"] == 50
    assert len(batch_trips) == BATCH_ROUND_TRIPS, described(batch_trips)
    # A batch's pending entries are one value: one SET, not a command per item.
    assert batch_trips[-1].commands.count("SET") == 1, described(batch_trips)

    item = batched.json()["results"][17]
    reported, item_trips = measured(counter, lambda: outcome(item))

    assert reported.status_code == 200, reported.text
    assert len(item_trips) == OUTCOME_ROUND_TRIPS, described(item_trips)
    client.close()
