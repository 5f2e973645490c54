"""Fixtures for the live feed: WebSocket communicators with credentials, and requirements.

Under ``CI=true`` a missing Redis or Chromium fails the test that needs it; elsewhere it is
skipped with the reason.
"""

import asyncio
import contextlib
import json
import os
import shutil
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest
import pytest_asyncio
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client
from rest_framework_simplejwt.tokens import RefreshToken

from moe_project.ws_urls import websocket_application
from tests.support.requirements import missing

CHROMIUM = "/usr/bin/chromium"
LIVE_REDIS_DB = 12
FEED_PATH = "/ws/routing"
# Same origin as the communicator's Host header: what a browser on the dashboard sends.
SAME_ORIGIN = "http://testserver"


def redis_url_for_live_tests() -> str:
    """The suite's Redis, on a database of its own.

    Other test modules delete ``moe:*`` keys in the suite's database between tests; a second
    test run sharing the machine would delete the feed's group under a connected consumer.
    """
    url = settings.REDIS_URL or os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    return urlunsplit(urlsplit(url)._replace(path=f"/{LIVE_REDIS_DB}"))


def channels_redis_layers(url: str) -> dict:
    return {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [url], "prefix": "moe:ws"},
        }
    }


@pytest.fixture(autouse=True)
def isolated_redis_layer(settings):
    """With REDIS_URL set, the feed's channels-redis layer uses the live tests' database."""
    if settings.REDIS_URL:
        settings.CHANNEL_LAYERS = channels_redis_layers(redis_url_for_live_tests())


@pytest_asyncio.fixture
async def open_feeds():
    """Build communicators with :func:`feed_communicator`; any left open is closed after."""
    opened = []

    def build(**kwargs) -> WebsocketCommunicator:
        opened.append(feed_communicator(**kwargs))
        return opened[-1]

    yield build
    for communicator in opened:
        with contextlib.suppress(Exception):  # already closed, or refused
            await communicator.disconnect()


def redis_available() -> bool:
    import redis

    try:
        redis.Redis.from_url(redis_url_for_live_tests(), socket_timeout=0.5).ping()
    except redis.RedisError:
        return False
    return True


@pytest.fixture
def require_chromium() -> str:
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        missing(f"Chromium not installed at {CHROMIUM} (apt-get install chromium)")
    return CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")


@pytest.fixture
def require_redis() -> None:
    if not redis_available():
        missing("Redis is not reachable")


def feed_communicator(
    *,
    origin: str | None = SAME_ORIGIN,
    host: str = "testserver",
    session: str | None = None,
    bearer: str | None = None,
    subprotocols: list[str] | None = None,
) -> WebsocketCommunicator:
    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    if session is not None:
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={session}".encode()))
    if bearer is not None:
        headers.append((b"authorization", f"Bearer {bearer}".encode()))
    return WebsocketCommunicator(
        websocket_application(), FEED_PATH, headers=headers, subprotocols=subprotocols
    )


def session_for(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def access_token_for(user) -> str:
    return str(RefreshToken.for_user(user).access_token)


async def receive_json(communicator, timeout: float = 2.0) -> dict:
    return json.loads(await communicator.receive_from(timeout))


async def collect(communicator, until, timeout: float = 3.0) -> list[dict]:
    """Messages received until ``until(messages)`` is true; fails after ``timeout`` seconds.

    Under Redis other test processes may publish to the same group, so callers look for their
    own messages rather than assume nothing else arrives.
    """
    messages: list[dict] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not until(messages):
        left = deadline - loop.time()
        if left <= 0:
            raise AssertionError(f"timed out; got {len(messages)} messages: {messages[-3:]}")
        try:
            messages.append(await receive_json(communicator, timeout=left))
        except TimeoutError:
            continue
    return messages


async def connected(communicator) -> dict:
    """Connect, assert acceptance, return the hello message."""
    accepted, detail = await communicator.connect()
    assert accepted, f"refused with {detail}"
    hello = await receive_json(communicator)
    assert hello["type"] == "hello"
    return hello


@pytest.fixture
def staff_session(staff) -> str:
    # Staff rather than the operators group: transactional tests flush the database, and the
    # group (created by a data migration) is gone after the first of them.
    return session_for(staff)


@pytest.fixture
def unique() -> str:
    """A per-test prefix, so a test only counts its own events."""
    return uuid.uuid4().hex[:10]
