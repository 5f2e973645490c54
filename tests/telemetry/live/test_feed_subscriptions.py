"""WS /ws/routing: batches or one message per decision, and who sees which decisions."""

import contextlib

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings

from moe_project.ws_urls import websocket_application
from telemetry.consumers import CLOSE_BAD_REQUEST
from telemetry.events import FeedPublisher
from tests.telemetry.live.conftest import SAME_ORIGIN, collect, connected, receive_json, session_for

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


def route(request_id: str, client=None) -> dict:
    item = {
        "request_id": request_id,
        "selected_services": ["svc-a"],
        "routing_strategy": "power_of_two",
        "requested_strategy": "adaptive",
        "latency_ms": 0.02,
    }
    if client is not None:
        item["client"] = client
    return item


def own(messages: list[dict], prefix: str) -> list[str]:
    """Request ids with ``prefix`` in route messages of either shape, in arrival order."""
    ids = []
    for m in messages:
        if m.get("type") != "route":
            continue
        for event in m.get("events", [m]):
            if event.get("request_id", "").startswith(prefix):
                ids.append(event["request_id"])
    return ids


@pytest.fixture
def publisher():
    made = []

    def make(**kwargs) -> FeedPublisher:
        made.append(FeedPublisher(interval=0.02, **kwargs))
        return made[-1]

    yield make
    for p in made:
        p.close()


@pytest_asyncio.fixture
async def feed_at():
    """A browser-like communicator (session cookie, same origin) on any feed URL."""
    opened = []

    async def build(user, path: str = "/ws/routing") -> WebsocketCommunicator:
        session = await sync_to_async(session_for)(user)
        headers = [
            (b"host", b"testserver"),
            (b"origin", SAME_ORIGIN.encode()),
            (b"cookie", f"{settings.SESSION_COOKIE_NAME}={session}".encode()),
        ]
        opened.append(WebsocketCommunicator(websocket_application(), path, headers=headers))
        return opened[-1]

    yield build
    for communicator in opened:
        with contextlib.suppress(Exception):  # already closed, or refused
            await communicator.disconnect()


async def test_mode_each_in_the_url_sends_one_top_level_message_per_decision(
    staff, feed_at, publisher, unique
):
    socket = await feed_at(staff, "/ws/routing?mode=each")
    accepted, _ = await socket.connect()
    assert accepted

    publisher().publish_routes([route(f"{unique}-1"), route(f"{unique}-2")])

    # no hello first: every message is an event, the decision's keys at the top level
    first = await receive_json(socket)
    second = await receive_json(socket)
    assert [first["request_id"], second["request_id"]] == [f"{unique}-1", f"{unique}-2"]
    assert first["type"] == "route"
    assert first["selected_services"] == ["svc-a"]
    assert first["routing_strategy"] == "power_of_two"
    assert first["latency_ms"] == 0.02
    assert first["dropped"] == 0
    await socket.disconnect()


async def test_a_subscribe_message_switches_between_batches_and_single_decisions(
    staff, feed_at, publisher, unique
):
    socket = await feed_at(staff)
    hello = await connected(socket)
    assert (hello["mode"], hello["sees"]) == ("batch", "all")
    feed = publisher()

    await socket.send_json_to({"type": "subscribe", "mode": "each", "max_per_second": 20})
    assert await receive_json(socket) == {
        "type": "subscribed",
        "mode": "each",
        "max_per_second": 20,
        "sees": "all",
    }
    feed.publish_routes([route(f"{unique}-e1"), route(f"{unique}-e2")])
    got = await collect(socket, lambda ms: len(own(ms, unique)) >= 2)
    assert [m["request_id"] for m in got] == [f"{unique}-e1", f"{unique}-e2"]

    await socket.send_json_to({"type": "subscribe", "mode": "batch"})
    assert (await receive_json(socket))["mode"] == "batch"
    feed.publish_routes([route(f"{unique}-b1"), route(f"{unique}-b2")])
    got = await collect(socket, lambda ms: len(own(ms, unique)) >= 2)
    (batch,) = got
    assert [e["request_id"] for e in batch["events"]] == [f"{unique}-b1", f"{unique}-b2"]
    await socket.disconnect()


async def test_a_bad_subscription_is_answered_with_an_error_naming_the_field(staff, feed_at):
    socket = await feed_at(staff)
    await connected(socket)

    await socket.send_json_to({"type": "subscribe", "mode": "each", "max_per_second": 0})

    answer = await receive_json(socket)
    assert answer["type"] == "error"
    assert answer["error"]["code"] == "bad_subscription"
    assert "max_per_second" in answer["error"]["fields"]
    await socket.disconnect()


async def test_a_bad_url_option_closes_with_4400(staff, feed_at):
    socket = await feed_at(staff, "/ws/routing?mode=everything")

    await socket.connect()

    assert (await socket.receive_output(1)) == {
        "type": "websocket.close",
        "code": CLOSE_BAD_REQUEST,
        "reason": '"mode" must be "batch" or "each".',
    }


async def test_single_decisions_are_rate_capped_with_a_dropped_count(
    staff, feed_at, publisher, unique
):
    socket = await feed_at(staff, "/ws/routing?mode=each&max_per_second=5")
    await socket.connect()

    publisher(max_route_items=1000).publish_routes([route(f"{unique}-{i}") for i in range(200)])

    got = await collect(socket, lambda ms: len(own(ms, unique)) >= 5)
    assert await socket.receive_nothing(0.3)
    mine = [m for m in got if m["request_id"].startswith(unique)]
    assert len(mine) == 5  # one second's burst
    assert mine[0]["dropped"] == 195
    assert mine[-1]["request_id"] == f"{unique}-199"  # the newest are kept
    await socket.disconnect()


async def test_a_client_sees_only_its_own_decisions(
    client_user, django_user_model, feed_at, publisher, unique
):
    other = await sync_to_async(django_user_model.objects.create_user)(
        "other-client", password="other-pass-1234"
    )
    batch_socket = await feed_at(client_user)
    hello = await connected(batch_socket)
    assert hello["sees"] == "own"
    each_socket = await feed_at(client_user, "/ws/routing?mode=each")
    await each_socket.connect()

    publisher().publish_routes([route(f"{unique}-theirs", client=other.pk)])
    publisher().publish_routes([route(f"{unique}-unknown")])
    publisher().publish_routes([route(f"{unique}-mine", client=client_user.pk)])

    got = await collect(batch_socket, lambda ms: own(ms, unique))
    assert await batch_socket.receive_nothing(0.3)
    assert own(got, unique) == [f"{unique}-mine"]
    each = await collect(each_socket, lambda ms: own(ms, unique))
    assert await each_socket.receive_nothing(0.3)
    assert own(each, unique) == [f"{unique}-mine"]
    await batch_socket.disconnect()
    await each_socket.disconnect()


async def test_operators_and_holders_of_view_all_decisions_see_everyone(
    staff, operator, django_user_model, feed_at, publisher, unique
):
    from django.contrib.auth.models import Permission

    def make_auditor():
        auditor = django_user_model.objects.create_user("auditor", password="auditor-pass-1234")
        auditor.user_permissions.add(Permission.objects.get(codename="view_all_decisions"))
        return auditor

    watcher = await sync_to_async(make_auditor)()
    sockets = [await feed_at(user) for user in (staff, operator, watcher)]
    for socket in sockets:
        assert (await connected(socket))["sees"] == "all"

    publisher().publish_routes([route(f"{unique}-a", client=12345)])
    publisher().publish_routes([route(f"{unique}-b", client=67890)])

    for socket in sockets:
        got = await collect(socket, lambda ms: len(own(ms, unique)) >= 2)
        assert sorted(own(got, unique)) == [f"{unique}-a", f"{unique}-b"]
        await socket.disconnect()
