"""A proxied path and query reach the service exactly as the client percent-encoded them:
non-ASCII (UTF-8 escapes), lowercase escapes, an encoded ``/``, an escape that is not UTF-8,
and the query around removed ``moe_*`` parameters.

Served by uvicorn on 127.0.0.1, as in production: Django's test client decodes a path's bytes
as ISO-8859-1 and has no ``raw_path``, so it would send ``café`` as ``cafÃ©``.
"""

import socket
import threading
import time

import httpx
import pytest
import uvicorn
from rest_framework_simplejwt.tokens import RefreshToken

from moe_project.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server():
    """The ASGI application under uvicorn in a thread (it shares this test's database)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        application, lifespan="off", ws="none", log_level="warning", access_log=False
    )
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not running.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    running.should_exit = True
    thread.join(10)
    sock.close()


@pytest.mark.parametrize(
    ("proxied", "received"),
    [
        (
            "caf%C3%A9/%E2%9C%93?q=caf%C3%A9&tick=%E2%9C%93",
            "caf%C3%A9/%E2%9C%93?q=caf%C3%A9&tick=%E2%9C%93",
        ),
        ("caf%c3%a9?q=%c3%a9", "caf%c3%a9?q=%c3%a9"),
        ("a%2Fb/c?path=a%2Fb", "a%2Fb/c?path=a%2Fb"),
        ("%FF%FE/x?raw=%FF", "%FF%FE/x?raw=%FF"),
        ("a%20b+c?s=a%20b+c&t=%7E", "a%20b+c?s=a%20b+c&t=%7E"),
        (
            "caf%C3%A9?moe_priority=0.5&q=a%20b&moe_key=k&r=%E2%9C%93",
            "caf%C3%A9?q=a%20b&r=%E2%9C%93",
        ),
    ],
)
def test_the_service_receives_the_clients_own_encoding(
    server, fleet, client_user, capability, proxied, received
):
    # given
    (backend,) = fleet(1)
    token = RefreshToken.for_user(client_user).access_token
    headers = {"Authorization": f"Bearer {token}", "X-Moe-Capabilities": capability}

    # when
    response = httpx.get(f"{server}/api/v1/proxy/{proxied}", headers=headers, timeout=30)

    # then
    assert response.status_code == 200, response.text
    assert [seen["path"] for seen in backend.seen] == [f"/{received}"]


def test_a_dot_segment_spelled_with_an_encoded_slash_is_still_refused(
    server, fleet, client_user, capability
):
    (backend,) = fleet(1)
    token = RefreshToken.for_user(client_user).access_token
    headers = {"Authorization": f"Bearer {token}", "X-Moe-Capabilities": capability}

    response = httpx.get(f"{server}/api/v1/proxy/a%2F..%2F..%2Fadmin", headers=headers)

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["path"]
    assert backend.hits == 0
