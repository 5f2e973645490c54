"""Stopping Redis mid-run: routing keeps answering, health says degraded, then recovers.

A private ``redis-server`` (started here, on a free port) backs two uvicorn workers that share
the scratch PostgreSQL database. While it is down every route and outcome still gets a 200 and
``/api/v1/health`` says ``degraded``; once it is started again on the same port the health is
``ok`` again without a restart, and live state is shared again (worker 2 sees worker 1's
in-flight requests).
"""

import shutil
import time

import pytest

from tests.integration.conftest import missing
from tests.integration.stack import (
    Api,
    RedisServer,
    WebServer,
    base_env,
    forget,
    obtain_token,
    start_all,
    wait_known,
    wait_until,
)

pytestmark = pytest.mark.integration

ROUTES_WHILE_DOWN = 15


@pytest.fixture
def private_redis(scaleout):
    if not shutil.which("redis-server"):
        missing("redis-server is not installed")
    server = RedisServer("redis-private", scaleout.log_dir)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
        forget([server])


@pytest.fixture
def workers(scaleout, private_redis):
    var_dir = scaleout.log_dir / "var-private-redis"
    var_dir.mkdir(exist_ok=True)
    env = base_env(
        DATABASE_URL=scaleout.database_url,
        REDIS_URL=private_redis.url,
        MOE_VAR_DIR=str(var_dir),
    )
    servers = [WebServer(f"web-redis-{i}", env, scaleout.log_dir) for i in (1, 2)]
    try:
        start_all(servers)
        token = obtain_token(servers[0].url)
        apis = [Api(s.url, token) for s in servers]
        yield apis
        for api in apis:
            api.close()
    finally:
        for server in servers:
            server.stop()
        forget(servers)


def in_flight(api: Api, cap: str) -> int:
    return sum(s["live"]["in_flight"] for s in api.services_with(cap))


def health(api: Api) -> tuple[int, str, dict | str]:
    """Status code, overall status and the body (text when it is not JSON)."""
    response = api.get("/api/v1/health")
    try:
        body = response.json()
    except ValueError:
        return response.status_code, "?", response.text[:300]
    return response.status_code, body.get("status", "?"), body


def test_routing_survives_redis_going_away_and_shares_state_again(
    scaleout, private_redis, workers, uid
):
    one, two = workers
    cap = f"rds-{uid}"
    ids = [f"rds-{uid}-{i}" for i in range(2)]
    for service_id in ids:
        one.register(service_id, [cap])
    wait_known(workers, ids)
    data = {"type": "it-redis", "capabilities": [cap]}
    for api in workers:
        assert health(api)[:2] == (200, "ok"), health(api)

    # Shared before the outage: worker 2 sees worker 1's request in flight.
    routed = one.ok(one.route(data, "power_of_two"))
    assert in_flight(two, cap) == 1
    two.outcome(routed["request_id"], routed["selected_services"][0], True, 10.0, 200)
    assert in_flight(one, cap) == 0

    private_redis.stop()
    # Every problem is collected and asserted at the end, so one run shows all of them.
    problems: list[str] = []

    # Down: every request still answers 200, on both workers, outcomes included.
    calls = []
    for i in range(ROUTES_WHILE_DOWN):
        for api in workers:
            if i % 5 == 0:  # a batch (its commit is awaited on the loop) and an item's outcome;
                # the first request of each worker after Redis went away is a batch
                batch = {"requests": [data] * 5, "routing_strategy": "power_of_two"}
                response = api.post("/api/v1/route/batch", batch)
                calls.append(("batch", response, 0.0))
                if response.status_code == 200:
                    item = response.json()["results"][3]
                    body = {"service_id": item["selected_services"][0], "success": True}
                    reply = api.post(f"/api/v1/route/{item['request_id']}/outcome", body)
                    calls.append(("batch outcome", reply, 0.0))
            started = time.perf_counter()
            response = api.route(data, "power_of_two")
            calls.append(("route", response, time.perf_counter() - started))
            if response.status_code == 200 and i % 2 == 0:
                r = response.json()
                body = {"service_id": r["selected_services"][0], "success": True, "latency_ms": 9.0}
                reply = api.post(f"/api/v1/route/{r['request_id']}/outcome", body)
                calls.append(("outcome", reply, 0.0))
    failed = [(kind, r.status_code, r.text[:200]) for kind, r, _ in calls if r.status_code != 200]
    slowest = max(t for _, _, t in calls)
    print(
        f"\nwhile Redis was down: {len(calls)} calls, {len(failed)} failed, slowest route "
        f"{slowest * 1000:.0f} ms"
    )
    if failed:
        problems.append(
            f"{len(failed)} of {len(calls)} calls failed while Redis was down: {failed[:2]}"
        )
    for api in workers:
        code, status, body = health(api)
        if (code, status) != (200, "degraded") or body["checks"]["redis"]["status"] != "down":
            problems.append(f"health while Redis was down: {code} {status} {body}")

    # Back on the same port (empty: it keeps nothing on disk).
    restarted = RedisServer("redis-private-again", scaleout.log_dir, port=private_redis.port)
    try:
        restarted.wait_ready()
        back = time.monotonic()

        # Health recovers by itself, without traffic.
        try:
            _, took = wait_until(
                lambda: all(health(api)[:2] == (200, "ok") for api in workers),
                5.0,
                "health ok on both workers",
                interval=0.2,
            )
            print(f"health ok {took:.2f} s after Redis came back, without traffic")
        except AssertionError as exc:
            reports = [health(api)[2] for api in workers]
            problems.append(f"{exc}: health stayed degraded while nothing was routed: {reports}")

        # State is shared again: once worker 1 routes through Redis, worker 2 sees every
        # request it routes. (The first requests may still be counted locally for up to the
        # store's reconnect interval.)
        def shared_again():
            one.ok(one.route(data, "power_of_two"))
            return in_flight(two, cap) > 0

        wait_until(shared_again, 10.0, "worker 2 to see worker 1's requests", interval=0.2)
        baseline = in_flight(two, cap)
        fresh = [one.ok(one.route(data, "power_of_two")) for _ in range(6)]
        assert in_flight(two, cap) == baseline + 6
        assert in_flight(one, cap) == baseline + 6
        for r in fresh:
            two.outcome(r["request_id"], r["selected_services"][0], True, 11.0, 200)
        assert in_flight(one, cap) == baseline
        batch = {"requests": [data] * 4, "routing_strategy": "power_of_two"}
        items = one.ok(one.post("/api/v1/route/batch", batch))["results"]
        assert in_flight(two, cap) == baseline + 4
        for r in items:
            two.outcome(r["request_id"], r["selected_services"][0], True, 11.0, 200)
        assert in_flight(one, cap) == baseline
        print(f"state shared again {time.monotonic() - back:.2f} s after Redis came back")

        for api in workers:
            assert health(api)[:2] == (200, "ok"), health(api)
        assert not problems, "\n".join(problems)
    finally:
        restarted.stop()
        forget([restarted])
