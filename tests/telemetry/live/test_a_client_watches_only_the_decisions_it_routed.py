"""End to end in one process: a client routes through the API and its feed shows only its own.

Needs the router to say who routed each decision (route items carry ``client``, the user id:
``Router.route(..., client=)``); until it does, this is skipped, and a client's feed shows no
decisions at all (the safe default, covered in test_feed_subscriptions.py).
"""

import inspect

import pytest
from asgiref.sync import sync_to_async

from routing.runtime import Router
from tests.telemetry.live.conftest import access_token_for, collect, connected

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        "client" not in inspect.signature(Router.route).parameters,
        reason="needs Router.route(client=) to put the user id on route items",
    ),
]


def register_one_service() -> None:
    from registry.services import register_service

    register_service(
        {
            "service_id": "svc-feed",
            "service_type": "inference",
            "endpoint": "http://127.0.0.1:9301",
            "capabilities": ["analysis"],
            "max_capacity": 100,
        }
    )


def route_ids(messages: list[dict]) -> list[str]:
    return [e["request_id"] for m in messages if m["type"] == "route" for e in m["events"]]


async def test_a_client_sees_its_own_decisions_and_not_another_clients(
    client_user, client_api, operator_api, open_feeds
):
    await sync_to_async(register_one_service)()
    feed = open_feeds(origin=None, bearer=await sync_to_async(access_token_for)(client_user))
    assert (await connected(feed))["sees"] == "own"

    def route(api) -> str:
        response = api.post("/api/v1/route", {"data": {"type": "inference"}}, format="json")
        assert response.status_code == 200, response.content
        return response.json()["request_id"]

    theirs = await sync_to_async(route)(operator_api)
    mine = await sync_to_async(route)(client_api)

    got = await collect(feed, lambda ms: mine in route_ids(ms))
    assert theirs not in route_ids(got)
    assert await feed.receive_nothing(0.3)
