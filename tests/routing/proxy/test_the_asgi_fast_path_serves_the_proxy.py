"""Under an ASGI server, /api/v1/proxy/ skips Django's middleware (moe_project/asgi.py): the
same view, with the host check, the body limit and JSON errors done on the way in."""

import httpx
import pytest

from moe_project.asgi import application

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def asgi(proxy):
    transport = httpx.ASGITransport(app=application, client=("127.0.0.1", 5555))
    return httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=proxy.headers
    )


async def test_a_request_is_relayed(asgi, afleet):
    (backend,) = await afleet(1)

    response = await asgi.post("/api/v1/proxy/things?x=1", content=b"payload")

    assert response.status_code == 200
    echo = response.json()
    assert (echo["method"], echo["path"], echo["body"]) == ("POST", "/things?x=1", "payload")
    assert echo["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert response.headers["X-Moe-Service"] == backend.name
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(asgi, afleet, settings):
    settings.MOE_PROXY_MAX_BODY_BYTES = 1024
    (backend,) = await afleet(1)

    response = await asgi.post("/api/v1/proxy/up", content=b"x" * 2048)

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert backend.hits == 0


async def test_a_streamed_body_over_the_limit_is_refused(asgi, afleet, settings):
    settings.MOE_PROXY_MAX_BODY_BYTES = 1024

    async def chunks():
        for _ in range(4):
            yield b"x" * 512

    (backend,) = await afleet(1)

    response = await asgi.post("/api/v1/proxy/up", content=chunks())

    assert response.status_code == 413
    assert backend.hits == 0


async def test_errors_are_json(asgi, afleet):
    await afleet(1)

    anonymous = await asgi.get("/api/v1/proxy/x", headers={"Authorization": ""})
    bad_host = await asgi.get("/api/v1/proxy/x", headers={"Host": "evil.example"})

    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "not_authenticated"
    assert bad_host.status_code == 400
    assert bad_host.json()["error"]["fields"] == {"Host": ["Not allowed."]}
