"""Proxy calls count against the client's rate limit, on the counter /route counts.

Over the limit, a proxy call gets /route's 429 (error JSON and ``Retry-After``) before it is
routed: no service is called, no decision recorded, no lease taken. Both entry points are
checked: Django's handler (the test client) and the ASGI fast path (``moe_project.asgi``).
"""

import re
import time

import httpx
import pytest
from asgiref.sync import sync_to_async
from rest_framework_simplejwt.tokens import AccessToken

from routing.history import flush_history
from routing.models import RoutingDecision
from routing.runtime import get_router

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def one_window():
    """The calls of a test must fall in one minute window of the 3-per-minute limit."""
    into_the_minute = time.time() % 60
    if into_the_minute > 50:
        time.sleep(60.5 - into_the_minute)


@pytest.fixture
def asgi(proxy):
    """A client of the ASGI application: /route through its handler, the proxy's fast path."""
    from moe_project.asgi import application

    transport = httpx.ASGITransport(app=application, client=("127.0.0.1", 5555))
    return httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=proxy.headers
    )


@pytest.fixture(params=["django", "asgi"])
def proxy_get(request, proxy, asgi):
    """``await proxy_get(path)`` through Django's handler or the ASGI fast path."""
    return proxy.get if request.param == "django" else asgi.get


def without_seconds(response) -> dict:
    error = response.json()["error"]
    return {**error, "message": re.sub(r"\d+", "N", error["message"])}


async def decisions() -> int:
    await sync_to_async(flush_history)()
    return await RoutingDecision.objects.acount()


async def test_a_client_over_its_limit_gets_a_429_and_no_service_is_called(
    three_per_minute, one_window, afleet, proxy_get
):
    # given
    (backend,) = await afleet(1)

    # when
    responses = [await proxy_get("/api/v1/proxy/health") for _ in range(5)]

    # then
    assert [r.status_code for r in responses] == [200, 200, 200, 429, 429]
    limited = responses[-1]
    assert limited.json()["error"]["code"] == "rate_limited"
    assert 0 <= int(limited.headers["Retry-After"]) <= 60
    assert backend.hits == 3
    assert await decisions() == 3
    live = await sync_to_async(get_router().live_states)([backend.name])
    assert live[backend.name]["in_flight"] == 0


async def test_proxy_and_route_calls_share_one_count(
    three_per_minute, one_window, afleet, asgi, proxy, capability
):
    # given
    (backend,) = await afleet(1)
    route = {"data": {"capabilities": [capability]}}

    # when: two proxy calls and a route (by Django's handler and by the fast paths)
    first = [
        await proxy.get("/api/v1/proxy/health"),
        await asgi.post("/api/v1/route", json=route),
        await asgi.get("/api/v1/proxy/health"),
    ]
    route_over = await asgi.post("/api/v1/route", json=route)
    proxy_over = await asgi.get("/api/v1/proxy/health")

    # then: the fourth call is over the limit whichever endpoint it goes to
    assert [r.status_code for r in first] == [200, 200, 200]
    assert route_over.status_code == proxy_over.status_code == 429
    assert without_seconds(proxy_over) == without_seconds(route_over)
    assert without_seconds(proxy_over)["code"] == "rate_limited"
    retry_after = int(proxy_over.headers["Retry-After"])
    assert abs(retry_after - int(route_over.headers["Retry-After"])) <= 1
    assert backend.hits == 2
    assert await decisions() == 3


@pytest.fixture
def operator_token(operator) -> str:
    return str(AccessToken.for_user(operator))


async def test_another_client_is_not_limited_by_this_ones_calls(
    three_per_minute, one_window, afleet, proxy, operator_token
):
    # given: this client has used its three calls
    await afleet(1)
    for _ in range(3):
        await proxy.get("/api/v1/proxy/health")

    # when
    mine = await proxy.get("/api/v1/proxy/health")
    theirs = await proxy.get(
        "/api/v1/proxy/health",
        headers={"Authorization": f"Bearer {operator_token}"},
    )

    # then
    assert mine.status_code == 429
    assert theirs.status_code == 200


async def test_a_call_refused_for_its_input_counts_too(three_per_minute, one_window, afleet, proxy):
    # given: as /route, a request is counted before its input is checked
    (backend,) = await afleet(1)

    # when
    refused = [
        await proxy.get("/api/v1/proxy/health", headers={"X-Moe-Top-K": "0"}),
        await proxy.get("/api/v1/proxy/../health"),
        await proxy.get("/api/v1/proxy/health", headers={"X-Moe-Top-K": "8"}),  # > the fleet
    ]
    over = await proxy.get("/api/v1/proxy/health", headers={"X-Moe-Top-K": "0"})

    # then
    assert [r.status_code for r in refused] == [400, 400, 400]
    assert over.status_code == 429
    assert backend.hits == 0
    assert await decisions() == 0
