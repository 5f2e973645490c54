"""Fixtures of the proxy tests: loopback backends registered as services, and API clients."""

import secrets

import pytest
from django.test import AsyncClient
from rest_framework_simplejwt.tokens import RefreshToken

from registry.services import register_service
from routing.forwarding import reset_forwarding_state
from tests.routing.proxy.backends import ProxyBackend


@pytest.fixture(autouse=True)
def fresh_forwarding_state():
    reset_forwarding_state()
    yield
    reset_forwarding_state()


@pytest.fixture
def capability() -> str:
    return f"px-{secrets.token_hex(3)}"


@pytest.fixture
def fleet(capability):
    """``fleet(n)`` -> n running backends, registered (ids "a-...", "b-...": snapshot order)."""
    made: list[ProxyBackend] = []

    def make(n: int, **register) -> list[ProxyBackend]:
        for _ in range(n):
            backend = ProxyBackend(f"{chr(ord('a') + len(made))}-{capability}")
            register_service(
                {
                    "service_id": backend.name,
                    "service_type": "custom",
                    "endpoint": backend.url,
                    "capabilities": [capability],
                    "max_capacity": 100,
                    **register,
                }
            )
            made.append(backend)
        return made[-n:]

    yield make
    for backend in made:
        backend.close()


class ProxyClient:
    """An async test client whose default headers (token, capability) merge with a call's."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.client = AsyncClient()
        self.headers = headers

    def __getattr__(self, method: str):
        call = getattr(self.client, method)

        def send(path, *args, headers=None, **kwargs):
            return call(path, *args, headers={**self.headers, **(headers or {})}, **kwargs)

        return send


@pytest.fixture
def proxy(client_user, capability) -> ProxyClient:
    """An async client carrying a JWT and routing to this test's capability."""
    token = RefreshToken.for_user(client_user).access_token
    return ProxyClient({"Authorization": f"Bearer {token}", "X-Moe-Capabilities": capability})


async def body_of(response) -> bytes:
    if getattr(response, "streaming", False):
        return b"".join([chunk async for chunk in response.streaming_content])
    return response.content


@pytest.fixture
def afleet(fleet):
    """``await afleet(n)``: :func:`fleet` from an async test."""
    from asgiref.sync import sync_to_async

    return sync_to_async(fleet)
