"""With ``MOE_NUM_PROXIES=0`` (the default) the rate limit of anonymous requests counts the
connecting address: a client that sends a different ``X-Forwarded-For`` with each request is
still one client. uvicorn, as ``.ci/serve`` and the image's entrypoint run it, must not take
the header as the client's address (its default trusts it from 127.0.0.1, which is where a
client on the same host, or a local reverse proxy, connects from).

A real uvicorn process on the scratch PostgreSQL and Redis, ``MOE_RATE_LIMIT=3/min``.
"""

import time

import httpx
import pytest
import redis

from tests.integration.stack import WebServer, forget, start_all

pytestmark = pytest.mark.integration

LIMIT = 3


@pytest.fixture
def limited_web(scaleout):
    web = WebServer("web-xff", scaleout.env(MOE_RATE_LIMIT=f"{LIMIT}/min"), scaleout.log_dir)
    try:
        start_all([web])
        yield web
    finally:
        web.stop()
        forget([web])


def forget_counts(redis_url: str) -> None:
    """The other tests' anonymous requests (token logins, from 127.0.0.1 too) count in the same
    window of the shared Redis: start from none."""
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter("*throttle*"))
    if keys:
        client.delete(*keys)
    client.close()


def test_a_new_forwarded_address_per_request_is_still_one_client(limited_web, scaleout):
    into = time.time() % 60
    if into > 45:  # the limit counts per minute window: not in its last seconds
        time.sleep(60 - into + 0.2)
    forget_counts(scaleout.redis_url)
    with httpx.Client(base_url=limited_web.url, timeout=15) as client:
        codes = [
            client.post(
                "/api/v1/auth/token/",
                json={"username": "nobody", "password": "wrong-password"},
                headers={"X-Forwarded-For": f"10.0.0.{i}"},
            ).status_code
            for i in range(LIMIT + 2)
        ]

    assert codes == [401] * LIMIT + [429, 429]
