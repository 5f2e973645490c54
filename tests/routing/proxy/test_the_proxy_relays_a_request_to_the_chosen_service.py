"""ANY /api/v1/proxy/<path> routes the request, then relays it to the chosen service."""

import json

import pytest

from routing.history import flush_history
from routing.models import RoutingDecision
from tests.routing.proxy.conftest import ProxyClient, body_of

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


async def test_method_path_query_body_and_headers_reach_the_service(proxy, afleet):
    # given
    (backend,) = await afleet(1)

    # when
    response = await proxy.put(
        "/api/v1/proxy/items/42?colour=blue&moe_strategy=semantic",
        data=b'{"name": "x"}',
        content_type="application/json",
        headers={
            "X-Custom": "kept",
            "Connection": "keep-alive, X-Hop",
            "X-Hop": "dropped",
            "Cookie": "sessionid=secret",
            "X-Moe-Key": "user-1",
        },
    )

    # then
    assert response.status_code == 200
    echo = json.loads(await body_of(response))
    assert echo["method"] == "PUT"
    assert echo["path"] == "/items/42?colour=blue"
    assert echo["body"] == '{"name": "x"}'
    sent = {k.lower(): v for k, v in echo["headers"].items()}
    assert sent["x-custom"] == "kept"
    assert sent["content-type"] == "application/json"
    assert sent["host"] == backend.url.removeprefix("http://")
    for private in ("authorization", "cookie", "x-hop", "x-moe-key", "x-moe-capabilities"):
        assert private not in sent
    assert sent["x-forwarded-for"] == "127.0.0.1"
    assert sent["x-forwarded-proto"] == "http"
    assert sent["x-forwarded-host"] == "testserver"
    assert sent["x-request-id"] == response["X-Moe-Request-Id"]
    assert 0 < int(sent["x-moe-deadline-ms"]) <= 15000
    assert response["X-Moe-Service"] == backend.name
    assert response["X-Backend"] == backend.name
    assert response["Content-Type"] == "application/json"


async def test_the_outcome_is_recorded_when_the_service_answers(proxy, afleet):
    # given
    await afleet(1)

    # when
    response = await proxy.get("/api/v1/proxy/ping")

    # then
    from asgiref.sync import sync_to_async

    await sync_to_async(flush_history)()
    row = await RoutingDecision.objects.aget(request_id=response["X-Moe-Request-Id"])
    assert row.success is True
    assert row.status_code == 200
    assert row.latency_ms > 0


async def test_a_client_error_of_the_service_is_relayed_and_not_a_service_failure(proxy, afleet):
    # given
    (backend,) = await afleet(1)
    backend.mode, backend.status = "status", 404

    # when
    response = await proxy.get("/api/v1/proxy/missing")

    # then
    assert response.status_code == 404
    assert response["X-Moe-Service"] == backend.name
    from asgiref.sync import sync_to_async

    await sync_to_async(flush_history)()
    row = await RoutingDecision.objects.aget(request_id=response["X-Moe-Request-Id"])
    assert row.success is True
    assert row.status_code == 404


async def test_routing_inputs_may_come_from_query_parameters(proxy, afleet, capability):
    # given: the client's default header names another capability
    await afleet(1)

    # when
    response = await proxy.get(
        f"/api/v1/proxy/?moe_capabilities={capability}&moe_type=custom&q=1",
        headers={"X-Moe-Capabilities": "nothing-offers-this"},
    )

    # then
    assert response.status_code == 200
    echo = json.loads(await body_of(response))
    assert echo["path"] == "/?q=1"


async def test_nothing_eligible_is_a_503(proxy, afleet):
    await afleet(1)

    response = await proxy.get("/api/v1/proxy/x", headers={"X-Moe-Capabilities": "nope"})

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "no_eligible_service"


async def test_cookies_reach_the_client_and_never_another_callers_request(proxy, afleet):
    # given
    (backend,) = await afleet(1)
    other_caller = ProxyClient(proxy.headers)

    # when: one caller logs in, then another caller's request uses the same pooled client
    login = await proxy.get("/api/v1/proxy/login")
    later = await other_caller.get("/api/v1/proxy/other")

    # then
    assert login.cookies["session"].value == "s3cret"
    assert login.cookies["session"]["httponly"]
    assert login.cookies["theme"].value == "dark"
    assert "Cookie" not in json.loads(await body_of(later))["headers"]


async def test_the_callers_cookies_go_along_but_not_the_routers_own(proxy, afleet):
    await afleet(1)

    response = await proxy.get(
        "/api/v1/proxy/x", headers={"Cookie": "sessionid=router; app=1; csrftoken=t; b=2"}
    )

    assert json.loads(await body_of(response))["headers"]["Cookie"] == "app=1; b=2"


async def test_connections_to_a_service_are_kept_alive_and_reused(proxy, afleet):
    (backend,) = await afleet(1)

    for _ in range(5):
        assert (await proxy.get("/api/v1/proxy/again")).status_code == 200

    assert len({seen["peer"] for seen in backend.seen}) == 1
