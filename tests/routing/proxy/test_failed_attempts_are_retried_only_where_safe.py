"""Failure handling: what is retried (and where), what counts against a service, deadlines."""

import json
import time

import pytest
from asgiref.sync import sync_to_async

from routing.forwarding import cooldowns
from routing.runtime import get_router
from tests.routing.proxy.conftest import body_of

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

# semantic breaks ties by load, then by snapshot order: an idle fleet's first choice is "a-...",
# which is where these tests put the failing one.
TO_A = {"X-Moe-Strategy": "semantic"}


@pytest.fixture(autouse=True)
def quick_timeouts(settings):
    settings.MOE_PROXY_ATTEMPT_TIMEOUT_SECONDS = 0.5
    settings.MOE_PROXY_CONNECT_TIMEOUT_SECONDS = 0.5


async def _errors_of(service_id: str) -> float:
    live = await sync_to_async(get_router().live_states)([service_id])
    return live[service_id]["error_rate"]


async def _first_choice_is(proxy, backend) -> None:
    response = await proxy.get("/api/v1/proxy/probe", headers=TO_A)
    assert response["X-Moe-Service"] == backend.name


async def test_a_refused_connection_fails_over_even_for_a_post(proxy, afleet):
    # given
    bad, good = await afleet(2)
    await _first_choice_is(proxy, bad)
    bad.kill()

    # when
    response = await proxy.post(
        "/api/v1/proxy/orders", data=b"{}", content_type="application/json", headers=TO_A
    )

    # then
    assert response.status_code == 200
    assert response["X-Moe-Service"] == good.name
    assert response["X-Moe-Attempts"] == "2"
    assert await _errors_of(bad.name) > 0


@pytest.mark.parametrize("mode", ["status-500", "status-503", "hang", "reset", "status-429"])
async def test_an_idempotent_request_fails_over(proxy, afleet, mode):
    # given
    bad, good = await afleet(2)
    await _first_choice_is(proxy, bad)
    bad.mode, _, code = mode.partition("-")
    bad.status = int(code or 200)

    # when
    started = time.monotonic()
    response = await proxy.get("/api/v1/proxy/items", headers=TO_A)

    # then
    assert response.status_code == 200, await body_of(response)
    assert json.loads(await body_of(response))["service"] == good.name
    assert response["X-Moe-Attempts"] == "2"
    assert await _errors_of(bad.name) > 0
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("mode", ["status-500", "hang", "reset"])
async def test_a_post_that_may_have_run_is_not_retried(proxy, afleet, mode):
    # given
    bad, good = await afleet(2)
    await _first_choice_is(proxy, bad)
    bad.mode, _, code = mode.partition("-")
    bad.status = int(code or 200)
    hits = good.hits

    # when
    response = await proxy.post(
        "/api/v1/proxy/orders", data=b"{}", content_type="application/json", headers=TO_A
    )

    # then
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "upstream_failed"
    assert [a["service_id"] for a in error["fields"]["attempts"]] == [bad.name]
    assert good.hits == hits


async def test_a_post_with_an_idempotency_key_is_retried(proxy, afleet):
    # given
    bad, good = await afleet(2)
    await _first_choice_is(proxy, bad)
    bad.mode, bad.status = "status", 503

    # when
    response = await proxy.post(
        "/api/v1/proxy/orders",
        data=b"{}",
        content_type="application/json",
        headers={**TO_A, "Idempotency-Key": "order-7"},
    )

    # then
    assert response.status_code == 200
    echo = json.loads(await body_of(response))
    assert echo["service"] == good.name
    assert echo["headers"]["Idempotency-Key"] == "order-7"
    assert echo["body"] == "{}"  # the body was sent again


async def test_other_client_errors_are_not_retried_nor_counted(proxy, afleet):
    bad, good = await afleet(2)
    await _first_choice_is(proxy, bad)
    bad.mode, bad.status = "status", 409

    response = await proxy.get("/api/v1/proxy/items", headers=TO_A)

    assert response.status_code == 409
    assert response["X-Moe-Service"] == bad.name
    assert await _errors_of(bad.name) == 0


async def test_a_429_cools_the_service_down_for_its_retry_after(proxy, afleet):
    # given
    bad, good = await afleet(2)
    await _first_choice_is(proxy, bad)
    bad.mode, bad.status, bad.retry_after = "status", 429, "30"
    hits = bad.hits

    # when
    responses = [await proxy.get("/api/v1/proxy/items", headers=TO_A) for _ in range(5)]

    # then: one 429, then the service is skipped while it cools down
    assert [r.status_code for r in responses] == [200] * 5
    assert {r["X-Moe-Service"] for r in responses} == {good.name}
    assert bad.hits == hits + 1
    assert cooldowns.cooling(bad.name)


async def test_every_attempt_failing_is_a_502_listing_them(proxy, afleet):
    backends = await afleet(3)
    for backend in backends:
        backend.mode, backend.status = "status", 503

    response = await proxy.get("/api/v1/proxy/items", headers=TO_A)

    assert response.status_code == 502
    attempts = response.json()["error"]["fields"]["attempts"]
    assert sorted(a["service_id"] for a in attempts) == sorted(b.name for b in backends)
    assert {a["status_code"] for a in attempts} == {503}


async def test_the_client_deadline_bounds_the_call_and_is_propagated(proxy, afleet, settings):
    # given: a service slower than the client is willing to wait
    settings.MOE_PROXY_ATTEMPT_TIMEOUT_SECONDS = 5.0
    (slow,) = await afleet(1)
    slow.mode, slow.delay_s = "slow", 2.0

    # when
    started = time.monotonic()
    response = await proxy.get("/api/v1/proxy/items", headers={"X-Moe-Deadline-Ms": "300"})
    took = time.monotonic() - started

    # then
    assert response.status_code == 502
    assert response.json()["error"]["fields"]["attempts"][0]["error"] == "timeout"
    assert took < 1.5
    assert int(slow.seen[-1]["headers"]["X-Moe-Deadline-Ms"]) <= 300


async def test_the_retry_budget_stops_retries(proxy, afleet, settings):
    # given: no retries allowed at all
    settings.MOE_RETRY_BUDGET_RATIO = 0.0
    settings.MOE_RETRY_BUDGET_MIN_RETRIES = 0
    from routing.forwarding import reset_forwarding_state

    reset_forwarding_state()
    bad, good = await afleet(2)
    await _first_choice_is(proxy, bad)
    bad.kill()

    # when
    response = await proxy.get("/api/v1/proxy/items", headers=TO_A)

    # then
    assert response.status_code == 502
    attempts = response.json()["error"]["fields"]["attempts"]
    assert attempts[-1] == {"service_id": good.name, "error": "retry_budget_exhausted"}


async def test_a_retry_target_whose_breaker_refuses_is_skipped(proxy, afleet, monkeypatch):
    # given: the first choice is down; the next candidate's breaker refuses the dispatch
    # (with Redis, another worker may have opened it a moment ago)
    bad, refusing, good = await afleet(3)
    await _first_choice_is(proxy, bad)
    bad.kill()
    store = get_router().store
    real = store.record_routed

    def record_routed(request_id, service_ids, **kwargs):
        if list(service_ids) == [refusing.name]:
            return (refusing.name,)
        return real(request_id, service_ids, **kwargs)

    monkeypatch.setattr(store, "record_routed", record_routed)
    hits = refusing.hits

    # when
    response = await proxy.get("/api/v1/proxy/items", headers=TO_A)

    # then
    assert response.status_code == 200
    assert response["X-Moe-Service"] == good.name
    assert refusing.hits == hits
