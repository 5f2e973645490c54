"""WS /ws/routing: a bad message is answered with an error frame naming what was wrong (the
socket stays open); an unknown URL option closes with 4400, as a bad value of a known one
does, and the close reason names it."""

import contextlib

import pytest
import pytest_asyncio
from channels.testing import WebsocketCommunicator
from django.conf import settings

from moe_project.ws_urls import websocket_application
from telemetry.consumers import CLOSE_BAD_REQUEST
from tests.telemetry.live.conftest import SAME_ORIGIN, connected, receive_json

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest_asyncio.fixture
async def feed_at(staff_session):
    """A browser's socket (session cookie, same origin) on any feed URL."""
    opened = []

    def build(path: str = "/ws/routing") -> WebsocketCommunicator:
        headers = [
            (b"host", b"testserver"),
            (b"origin", SAME_ORIGIN.encode()),
            (b"cookie", f"{settings.SESSION_COOKIE_NAME}={staff_session}".encode()),
        ]
        opened.append(WebsocketCommunicator(websocket_application(), path, headers=headers))
        return opened[-1]

    yield build
    for communicator in opened:
        with contextlib.suppress(Exception):  # already closed, or refused
            await communicator.disconnect()


async def still_open(socket) -> None:
    await socket.send_json_to({"type": "ping"})
    assert (await receive_json(socket))["type"] == "pong"


@pytest.mark.parametrize(
    ("frame", "code", "field", "says"),
    [
        ({"text_data": "{not json"}, "invalid_json", "body", "not valid JSON"),
        ({"bytes_data": b"\xff\xfe"}, "invalid_json", "body", "not valid JSON"),
        ({"text_data": "[1, 2]"}, "bad_message", "body", "JSON object"),
        ({"text_data": '"ping"'}, "bad_message", "body", "JSON object"),
        ({"text_data": '{"type": "pnig"}'}, "bad_message", "type", '"pnig"'),
        ({"text_data": '{"type": 7}'}, "bad_message", "type", '"7"'),
        ({"text_data": '{"mode": "each"}'}, "bad_message", "type", 'No "type"'),
        (
            {"text_data": '{"type": "subscribe", "mode": "each", "max_per_sec": 5}'},
            "bad_subscription",
            "max_per_sec",
            '"max_per_sec"',
        ),
    ],
)
async def test_a_bad_message_gets_an_error_naming_what_was_wrong(feed_at, frame, code, field, says):
    socket = feed_at()
    await connected(socket)

    await socket.send_to(**frame)

    answer = await receive_json(socket)
    assert answer["type"] == "error"
    assert answer["error"]["code"] == code
    assert list(answer["error"]["fields"]) == [field]
    assert says in answer["error"]["message"]
    await still_open(socket)


async def test_an_unknown_type_is_echoed_only_in_part(feed_at):
    socket = feed_at()
    await connected(socket)

    await socket.send_json_to({"type": "x" * 10_000})

    answer = await receive_json(socket)
    assert answer["error"]["code"] == "bad_message"
    assert len(answer["error"]["message"]) < 200


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("foo=bar", 'Unknown option "foo" (known: "mode", "max_per_second").'),
        ("mode=each&max_per_secnd=5", 'Unknown option "max_per_secnd"'),
        ("mode=", '"mode" must be "batch" or "each".'),
        ("max_per_second=0", '"max_per_second" must be from 1 to 500.'),
        ("token=abc", 'Unknown option "token"'),
    ],
)
async def test_a_bad_or_unknown_url_option_closes_with_4400_naming_it(feed_at, query, reason):
    socket = feed_at(f"/ws/routing?{query}")

    await socket.connect()

    closed = await socket.receive_output(1)
    assert closed["type"] == "websocket.close"
    assert closed["code"] == CLOSE_BAD_REQUEST
    assert closed["reason"].startswith(reason)


async def test_a_close_reason_fits_in_a_close_frame(feed_at):
    socket = feed_at("/ws/routing?" + "%F0%9F%98%80" * 200 + "=1")

    await socket.connect()

    closed = await socket.receive_output(1)
    assert closed["code"] == CLOSE_BAD_REQUEST
    assert 0 < len(closed["reason"].encode()) <= 123
