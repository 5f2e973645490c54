"""A bad token sent to the proxy gets the 401 every other endpoint gives it: the same message
(that the token is not valid, not that no credentials were provided) and the same
``WWW-Authenticate`` challenge, through Django's handler and the ASGI fast path alike.

The token goes with each call: Django's ``AsyncClient(headers=...)`` sends its default headers
under their WSGI names (an ``http-authorization`` header), so a token given there never
arrives and the proxy rightly answers that none was provided.
"""

import time

import httpx
import jwt
import pytest
from django.conf import settings
from django.test import AsyncClient
from rest_framework_simplejwt.tokens import RefreshToken

from moe_project.asgi import application

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

INVALID = "Token is invalid"
TWO_VALUES = "Authorization header must contain two space-delimited values"


def _signed(claims: dict, key: str | None = None) -> str:
    return jwt.encode(claims, key or settings.SIMPLE_JWT["SIGNING_KEY"], algorithm="HS256")


@pytest.fixture
def bad_headers(client_user) -> dict[str, tuple[str, str]]:
    """name -> (Authorization header, the message every endpoint answers it with)."""
    refresh = RefreshToken.for_user(client_user)
    claims = dict(refresh.access_token.payload)
    no_user = {k: v for k, v in claims.items() if k != "user_id"}
    return {
        "garbage": ("Bearer not.a.token", INVALID),
        "forged signature": (f"Bearer {_signed(claims, 'k' * 48)}", INVALID),
        "unsigned": (f"Bearer {jwt.encode(claims, None, algorithm='none')}", INVALID),
        "expired": (
            f"Bearer {_signed({**claims, 'exp': int(time.time()) - 60})}",
            "Token is expired",
        ),
        "refresh token": (f"Bearer {refresh}", "Token has wrong type"),
        "no user id": (
            f"Bearer {_signed(no_user)}",
            "Token contained no recognizable user identification",
        ),
        "three parts": ("Bearer a b", TWO_VALUES),
    }


def _refusal(response) -> tuple:
    return (
        response.status_code,
        response.json()["error"]["code"],
        response.json()["error"]["message"],
        response.headers.get("WWW-Authenticate"),
    )


async def test_the_proxy_answers_a_bad_token_as_the_other_endpoints_do(bad_headers):
    asgi = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application, client=("127.0.0.1", 5555)),
        base_url="http://testserver",
    )
    django_client = AsyncClient()

    for name, (header, message) in bad_headers.items():
        # given
        headers = {"Authorization": header}

        # when
        services = await asgi.get("/api/v1/services", headers=headers)
        fast_path = await asgi.get("/api/v1/proxy/x", headers=headers)
        through_django = await django_client.get("/api/v1/proxy/x", headers=headers)

        # then
        expected = (401, "not_authenticated", message, 'Bearer realm="api"')
        assert _refusal(services) == expected, name
        assert _refusal(fast_path) == expected, name
        assert _refusal(through_django) == expected, name


async def test_no_token_gets_the_same_challenge_as_the_other_endpoints():
    asgi = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application, client=("127.0.0.1", 5555)),
        base_url="http://testserver",
    )

    services = await asgi.get("/api/v1/services")
    proxied = await asgi.get("/api/v1/proxy/x")

    assert _refusal(proxied) == _refusal(services)
    assert _refusal(proxied)[2] == "Authentication credentials were not provided."
