"""WS /ws/routing closes with 4401 when the login behind it ends: logout, token expiry."""

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken

from telemetry import consumers
from telemetry.consumers import CLOSE_UNAUTHENTICATED
from tests.telemetry.live.conftest import connected

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def quick_session_checks(monkeypatch):
    monkeypatch.setattr(consumers, "SESSION_CHECK_SECONDS", 0.1)


def logged_in_browser(user) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


async def closed_code(communicator, timeout: float) -> int | None:
    while True:
        output = await communicator.receive_output(timeout)
        if output["type"] == "websocket.close":
            return output.get("code")


async def test_logging_out_closes_the_socket_with_4401(staff, open_feeds):
    browser = await sync_to_async(logged_in_browser)(staff)
    feed = open_feeds(session=browser.cookies[settings.SESSION_COOKIE_NAME].value)
    await connected(feed)
    assert await feed.receive_nothing(0.4)  # the login holds: the socket stays open

    await sync_to_async(browser.logout)()

    assert await closed_code(feed, 2) == CLOSE_UNAUTHENTICATED


async def test_changing_the_password_closes_the_socket_with_4401(staff, open_feeds):
    browser = await sync_to_async(logged_in_browser)(staff)
    feed = open_feeds(session=browser.cookies[settings.SESSION_COOKIE_NAME].value)
    await connected(feed)

    def change_password():
        staff.set_password("a-new-password-5678")
        staff.save()

    await sync_to_async(change_password)()

    assert await closed_code(feed, 2) == CLOSE_UNAUTHENTICATED


async def test_a_token_socket_closes_with_4401_when_the_token_expires(client_user, open_feeds):
    def short_token() -> str:
        token = AccessToken.for_user(client_user)
        token.set_exp(lifetime=timedelta(seconds=2))
        return str(token)

    feed = open_feeds(origin=None, bearer=await sync_to_async(short_token)())
    await connected(feed)
    assert await feed.receive_nothing(0.5)

    assert await closed_code(feed, 3) == CLOSE_UNAUTHENTICATED
