"""WS /ws/routing: who may connect (session, JWT) and from where (origin)."""

import pytest

from telemetry.consumers import (
    CLOSE_FORBIDDEN_ORIGIN,
    CLOSE_UNAUTHENTICATED,
    SUBPROTOCOL,
)
from tests.telemetry.live.conftest import (
    access_token_for,
    connected,
    session_for,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


async def test_a_logged_in_browser_is_accepted_with_a_hello(staff_session, open_feeds):
    communicator = open_feeds(session=staff_session)

    hello = await connected(communicator)

    assert hello["user"] == "staff"
    assert "route" in hello["event_types"]
    assert hello["route_flush_ms"] > 0
    assert hello["fleet"]["services"] == 0
    await communicator.disconnect()


async def test_an_api_client_with_a_bearer_header_is_accepted(client_user, open_feeds):
    communicator = open_feeds(origin=None, bearer=access_token_for(client_user))

    hello = await connected(communicator)

    assert hello["user"] == "client"
    await communicator.disconnect()


async def test_a_token_in_the_subprotocol_is_accepted_and_never_echoed(client_user, open_feeds):
    token = access_token_for(client_user)
    communicator = open_feeds(subprotocols=[SUBPROTOCOL, f"bearer.{token}"])

    accepted, subprotocol = await communicator.connect()

    assert accepted
    assert subprotocol == SUBPROTOCOL
    await communicator.disconnect()


async def test_an_anonymous_connection_is_closed_with_4401(open_feeds):
    communicator = open_feeds()

    accepted, _ = await communicator.connect()
    closed = await communicator.receive_output(1)

    # Accepted only to deliver the close code; nothing else is sent.
    assert accepted
    assert closed == {"type": "websocket.close", "code": CLOSE_UNAUTHENTICATED}
    assert await communicator.receive_nothing(0.2)


async def test_a_bad_token_is_refused_even_with_a_valid_session(staff_session, open_feeds):
    communicator = open_feeds(session=staff_session, bearer="not-a-jwt")

    await communicator.connect()
    closed = await communicator.receive_output(1)

    assert closed["code"] == CLOSE_UNAUTHENTICATED


async def test_a_refresh_token_is_not_an_access_token(client_user, open_feeds):
    from rest_framework_simplejwt.tokens import RefreshToken

    communicator = open_feeds(origin=None, bearer=str(RefreshToken.for_user(client_user)))

    await communicator.connect()
    closed = await communicator.receive_output(1)

    assert closed["code"] == CLOSE_UNAUTHENTICATED


async def test_an_inactive_user_is_refused(django_user_model, open_feeds):
    from asgiref.sync import sync_to_async

    user = await sync_to_async(django_user_model.objects.create_user)("gone", password="x-12345678")
    session = await sync_to_async(session_for)(user)
    user.is_active = False
    await sync_to_async(user.save)()
    communicator = open_feeds(session=session)

    await communicator.connect()
    closed = await communicator.receive_output(1)

    assert closed["code"] == CLOSE_UNAUTHENTICATED


async def test_a_foreign_origin_is_closed_with_4403(staff_session, open_feeds):
    communicator = open_feeds(origin="https://evil.example", session=staff_session)

    await communicator.connect()
    closed = await communicator.receive_output(1)

    assert closed == {"type": "websocket.close", "code": CLOSE_FORBIDDEN_ORIGIN}


async def test_the_origin_is_checked_before_the_user(client_user, open_feeds):
    communicator = open_feeds(origin="http://evil.example", bearer=access_token_for(client_user))

    await communicator.connect()
    closed = await communicator.receive_output(1)

    assert closed["code"] == CLOSE_FORBIDDEN_ORIGIN


async def test_an_origin_listed_in_settings_is_accepted(staff_session, settings, open_feeds):
    settings.MOE_WS_ALLOWED_ORIGINS = ["https://ops.example.com"]
    communicator = open_feeds(origin="https://ops.example.com", session=staff_session)

    await connected(communicator)
    await communicator.disconnect()
