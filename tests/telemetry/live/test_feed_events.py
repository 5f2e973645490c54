"""Events reach connected clients: prompt fleet events, coalesced and bounded route batches."""

import asyncio

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async

from telemetry import events
from telemetry.events import FeedPublisher, publish_event, publish_routes
from tests.telemetry.live.conftest import collect, connected, feed_communicator, receive_json

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


def route(request_id: str, **extra) -> dict:
    return {
        "request_id": request_id,
        "selected_services": ["svc-a"],
        "routing_strategy": "power_of_two",
        "latency_ms": 0.0123456,
        "no_eligible_service": False,
        "request_type": "inference",
        **extra,
    }


def route_ids(messages: list[dict], prefix: str) -> list[str]:
    return [
        e["request_id"]
        for m in messages
        if m["type"] == "route"
        for e in m["events"]
        if e.get("request_id", "").startswith(prefix)
    ]


def own_route_messages(messages: list[dict], prefix: str) -> list[dict]:
    return [m for m in messages if route_ids([m], prefix)]


@pytest_asyncio.fixture
async def feed(staff_session):
    """Two connected browsers."""
    clients = [feed_communicator(session=staff_session) for _ in range(2)]
    for client in clients:
        await connected(client)
    yield clients
    for client in clients:
        await client.disconnect()


@pytest.fixture
def publisher():
    """A publisher of the test's own, with limits the test chooses."""
    made = []

    def make(**kwargs) -> FeedPublisher:
        made.append(FeedPublisher(**kwargs))
        return made[-1]

    yield make
    for p in made:
        p.close()


async def test_a_fleet_event_reaches_every_connected_client(feed, unique):
    publish_event("rebalanced", {"task_id": unique, "changed": {"svc-a": 1.5}})

    for client in feed:
        got = await collect(client, lambda ms: any(m.get("task_id") == unique for m in ms))
        message = next(m for m in got if m.get("task_id") == unique)
        assert message == {"type": "rebalanced", "task_id": unique, "changed": {"svc-a": 1.5}}


async def test_fleet_events_do_not_wait_for_the_route_flush(feed, publisher, unique):
    slow = publisher(interval=30.0)
    slow.publish_routes([route(f"{unique}-r")])

    slow.publish_event("breaker_opened", {"service_id": unique, "from": "closed"})

    got = await collect(feed[0], lambda ms: any(m.get("service_id") == unique for m in ms), 1.0)
    assert got[-1] == {"type": "breaker_opened", "service_id": unique, "from": "closed"}
    assert not route_ids(got, unique)


async def test_fleet_events_arrive_in_the_order_they_were_published(feed, unique):
    for i in range(30):
        kind = "breaker_opened" if i % 2 else "breaker_closed"
        publish_event(kind, {"service_id": unique, "n": i})

    def mine(ms):
        return [m["n"] for m in ms if m.get("service_id") == unique]

    got = await collect(feed[0], lambda ms: len(mine(ms)) >= 30)
    assert mine(got) == list(range(30))


async def test_an_unknown_event_type_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown feed event type"):
        publish_event("route_exploded", {})


async def test_many_route_calls_arrive_as_few_messages_holding_every_item(feed, publisher, unique):
    coalescing = publisher(interval=0.05, max_route_items=1000)
    ids = [f"{unique}-{i}" for i in range(500)]

    for request_id in ids:
        coalescing.publish_routes([route(request_id)])

    got = await collect(feed[1], lambda ms: len(route_ids(ms, unique)) >= len(ids))
    mine = own_route_messages(got, unique)
    assert route_ids(got, unique) == ids  # all of them, in order, once
    assert len(mine) <= 3  # 500 calls, a handful of messages
    assert all(m["dropped"] == 0 for m in mine)
    assert mine[0]["events"][0] == {
        "request_id": ids[0],
        "selected_services": ["svc-a"],
        "routing_strategy": "power_of_two",
        "latency_ms": 0.012,
        "no_eligible_service": False,
        "request_type": "inference",
    }


async def test_a_steady_stream_is_sent_once_per_interval(feed, publisher, unique):
    coalescing = publisher(interval=0.1, max_route_items=1000)

    for burst in range(10):  # ~0.5 s of traffic, 20 routes every 50 ms
        coalescing.publish_routes([route(f"{unique}-{burst}-{i}") for i in range(20)])
        await asyncio.sleep(0.05)

    got = await collect(feed[0], lambda ms: len(route_ids(ms, unique)) >= 200)
    assert 3 <= len(own_route_messages(got, unique)) <= 8


async def test_a_full_buffer_keeps_the_newest_items_and_counts_the_rest(feed, publisher, unique):
    bounded = publisher(interval=0.3, max_route_items=10)
    ids = [f"{unique}-{i}" for i in range(55)]

    bounded.publish_routes([route(i) for i in ids[:10]])
    bounded.publish_routes([route(i) for i in ids[10:20]])
    bounded.publish_routes([route(i) for i in ids[20:25]])
    bounded.publish_routes([route(i) for i in ids[25:]])  # one batch larger than the buffer

    got = await collect(feed[0], lambda ms: own_route_messages(ms, unique))
    (message,) = own_route_messages(got, unique)
    assert route_ids([message], unique) == ids[-10:]
    assert message["dropped"] == 45
    assert (bounded.stats["route_items"], bounded.stats["dropped"]) == (10, 45)


async def test_routes_published_from_another_thread_arrive(feed, unique):
    # Sync views run in worker threads; in-memory mode must hop onto the consumers' loop.
    await sync_to_async(publish_routes, thread_sensitive=False)([route(f"{unique}-t")])

    got = await collect(feed[0], lambda ms: route_ids(ms, unique))
    assert route_ids(got, unique) == [f"{unique}-t"]


async def test_only_known_route_keys_reach_the_browser(feed, publisher, unique):
    p = publisher(interval=0.05)

    p.publish_routes([route(f"{unique}-k", scores={"svc-a": 0.9}, payload={"secret": 1})])

    got = await collect(feed[0], lambda ms: route_ids(ms, unique))
    (event,) = own_route_messages(got, unique)[0]["events"]
    assert "payload" not in event and "scores" not in event


async def test_a_registered_and_a_removed_service_are_announced(feed, unique):
    from registry.services import register_service, remove_service

    service_id = f"svc-{unique}"
    await sync_to_async(register_service)(
        {
            "service_id": service_id,
            "service_type": "inference",
            "endpoint": "http://127.0.0.1:9001",
            "capabilities": ["analysis"],
            "max_capacity": 40,
        }
    )
    await sync_to_async(remove_service)(service_id)

    def announced(ms):
        return [m["type"] for m in ms if m.get("service_id") == service_id]

    got = await collect(feed[0], lambda ms: len(announced(ms)) >= 2)
    assert announced(got) == ["service_registered", "service_removed"]
    registered = next(m for m in got if m["type"] == "service_registered")
    assert registered["created"] is True
    assert registered["max_capacity"] == 40


async def test_a_client_that_left_gets_nothing_more(staff_session, unique, open_feeds):
    leaving = open_feeds(session=staff_session)
    await connected(leaving)
    await leaving.disconnect()
    staying = open_feeds(session=staff_session)
    await connected(staying)

    publish_event("model_updated", {"version": unique})

    await collect(staying, lambda ms: any(m.get("version") == unique for m in ms))
    await staying.disconnect()


async def test_ping_gets_a_pong_even_after_garbage(feed):
    await feed[0].send_to(text_data="{not json")
    await feed[0].send_json_to({"type": "ping"})

    got = await collect(feed[0], lambda ms: any(m["type"] == "pong" for m in ms))
    assert got[-1]["type"] == "pong"
    assert [m["error"]["code"] for m in got if m["type"] == "error"] == ["invalid_json"]


async def test_without_listeners_in_memory_publishing_buffers_nothing(settings, unique):
    p = FeedPublisher()

    p.publish_routes([route(f"{unique}-x")] * 5)

    if settings.REDIS_URL:  # listeners may be in other processes: the batch waits for the flush
        assert p._seen == 5
        p.close()
    else:  # the in-memory layer does not leave the process, and nobody here listens
        assert p._seen == 0
        assert events._listener_loops.current is None


async def test_the_hello_counts_the_fleet(staff_session, unique, open_feeds):
    from registry.services import register_service

    await sync_to_async(register_service)(
        {
            "service_id": f"svc-{unique}",
            "service_type": "storage",
            "endpoint": "http://127.0.0.1:9002",
            "capabilities": [],
            "max_capacity": 5,
        }
    )
    client = open_feeds(session=staff_session)

    accepted, _ = await client.connect()
    hello = await receive_json(client)

    assert accepted
    assert hello["fleet"] == {
        "services": 1,
        "by_status": {"active": 1},
        "by_health": {"unknown": 1},
    }
    await client.disconnect()


async def test_a_long_lived_connection_rejoins_the_group_it_was_dropped_from(
    staff_session, unique, monkeypatch, open_feeds
):
    from channels.layers import get_channel_layer

    from telemetry import consumers

    monkeypatch.setattr(consumers, "GROUP_REFRESH_SECONDS", 0.05)
    client = open_feeds(session=staff_session)
    await connected(client)
    layer = get_channel_layer()

    # given: the layer forgot the membership (channels-redis does after group_expiry)
    if hasattr(layer, "groups"):
        layer.groups.pop(events.FEED_GROUP, None)
    else:
        connection = layer.connection(layer.consistent_hash(events.FEED_GROUP))
        await connection.delete(layer._group_key(events.FEED_GROUP))
    await asyncio.sleep(0.2)

    # when
    publish_event("model_updated", {"version": unique})

    # then
    await collect(client, lambda ms: any(m.get("version") == unique for m in ms))
    await client.disconnect()


async def test_route_items_are_wanted_only_when_someone_can_listen(
    settings, staff_session, open_feeds
):
    p = FeedPublisher()
    if settings.REDIS_URL:  # listeners may be in any process
        assert p.wants_routes()
        p.close()
        return
    assert not p.wants_routes()
    client = open_feeds(session=staff_session)
    await connected(client)

    assert p.wants_routes()

    await client.disconnect()
    assert not p.wants_routes()


async def test_a_batch_may_send_only_its_tail_and_count_the_rest(feed, publisher, unique):
    p = publisher(interval=0.05, max_route_items=10)
    tail = [route(f"{unique}-{i}") for i in range(9_990, 10_000)]

    p.publish_routes(tail, skipped=9_990)

    got = await collect(feed[0], lambda ms: own_route_messages(ms, unique))
    (message,) = own_route_messages(got, unique)
    assert route_ids([message], unique) == [e["request_id"] for e in tail]
    assert message["dropped"] == 9_990
