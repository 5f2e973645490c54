"""Two web workers count one client's requests together: N workers are not N x the limit.

Two uvicorn processes of their own (``MOE_RATE_LIMIT=20/min``) on the scratch PostgreSQL and
Redis; one client alternates between them. Exactly 20 requests pass in the window, whichever
worker serves them, and every further one is a 429 ``rate_limited`` with a ``Retry-After``
header from both workers.
"""

import time

import httpx
import pytest

from tests.integration.stack import WebServer, forget, manage, obtain_token, start_all

pytestmark = pytest.mark.integration

LIMIT = 20
CLIENT = ("rate-limited-client", "rate-limited-pass-1234")
CREATE_CLIENT = f"""
from django.contrib.auth import get_user_model
get_user_model().objects.get_or_create(username={CLIENT[0]!r})
user = get_user_model().objects.get(username={CLIENT[0]!r})
user.set_password({CLIENT[1]!r})
user.save()
"""


@pytest.fixture
def limited_workers(scaleout):
    env = scaleout.env(MOE_RATE_LIMIT=f"{LIMIT}/min")
    manage(env, CREATE_CLIENT, scaleout.log_dir, "create-rate-limited-client")
    workers = [WebServer(f"web-rate-{name}", env, scaleout.log_dir) for name in "ab"]
    try:
        start_all(workers)
        yield workers
    finally:
        for worker in workers:
            worker.stop()
        forget(workers)


def wait_for_a_fresh_window() -> None:
    """The limit counts per minute window: do not start in its last seconds."""
    into = time.time() % 60
    if into > 45:
        time.sleep(60 - into + 0.2)


def test_one_clients_requests_count_against_one_limit_on_every_worker(limited_workers):
    token = obtain_token(limited_workers[0].url, *CLIENT)
    clients = [
        httpx.Client(base_url=w.url, headers={"Authorization": f"Bearer {token}"}, timeout=15)
        for w in limited_workers
    ]
    wait_for_a_fresh_window()

    responses = [clients[i % 2].post("/api/v1/route", json={"data": {}}) for i in range(2 * LIMIT)]

    passed = [r for r in responses if r.status_code != 429]
    limited = [r for r in responses if r.status_code == 429]
    assert len(passed) == LIMIT, [r.status_code for r in responses]
    assert {r.status_code for r in passed} <= {200, 503}  # routed (or no eligible service)
    assert {str(r.request.url).split("/api")[0] for r in limited} == {
        w.url for w in limited_workers
    }
    for response in limited:
        assert response.json()["error"]["code"] == "rate_limited"
        assert 0 <= int(response.headers["Retry-After"]) <= 60
    for client in clients:
        client.close()
