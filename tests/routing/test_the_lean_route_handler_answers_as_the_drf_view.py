"""The ASGI application's own route handler (routing/api/fast.py) answers as the DRF views do.

Django's test client does not go through ``moe_project.asgi``: here every request is sent
through the real ASGI application and through Django's own ASGI handler (the DRF views), and
the two answers are compared: status, error JSON and headers, for good input, bad input,
missing and expired tokens, a throttled client and batches. Django's ``request_started``
signal tells which requests the lean handler served itself and which it handed to Django.
"""

import asyncio
import datetime
import re

import httpx
import pytest
from django.core.signals import request_started
from rest_framework_simplejwt.tokens import AccessToken

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

HOST = "http://localhost"
NOT_COMPARED = {"date", "content-length", "server"}


class Served:
    """Counts the requests Django's handler saw (the lean handler fires no signal)."""

    def __init__(self) -> None:
        self.by_django = 0
        request_started.connect(self._seen)

    def _seen(self, **kwargs) -> None:
        self.by_django += 1

    def close(self) -> None:
        request_started.disconnect(self._seen)


@pytest.fixture
def apps():
    from moe_project.asgi import application, django_asgi_app

    served = Served()
    lean = httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url=HOST)
    django = httpx.AsyncClient(transport=httpx.ASGITransport(app=django_asgi_app), base_url=HOST)
    yield lean, django, served
    served.close()


@pytest.fixture
def token(client_user) -> str:
    return str(AccessToken.for_user(client_user))


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


async def both(apps, path: str, *, lean_served: bool, **kwargs):
    """The same request to both applications; checks who served the lean one."""
    lean, django, served = apps
    before = served.by_django
    mine = await lean.post(path, **kwargs)
    assert (served.by_django == before) is lean_served, mine.text
    reference = await django.post(path, **kwargs)
    return mine, reference


def headers_of(response) -> dict:
    return {k: v for k, v in response.headers.items() if k not in NOT_COMPARED}


def same_error(mine, reference) -> None:
    assert mine.status_code == reference.status_code
    if mine.status_code == 503:  # a routed request: its id and timing are its own
        drop = {"request_id", "latency_ms"}
        assert {k: v for k, v in mine.json().items() if k not in drop} == {
            k: v for k, v in reference.json().items() if k not in drop
        }
    else:
        assert mine.json() == reference.json()
    assert headers_of(mine) == headers_of(reference)


@pytest.mark.parametrize(
    "body",
    [
        {"data": {}},
        {"data": {"type": "inference", "priority": 0.9, "key": "user-1"}, "top_k": 2},
        {"data": {"capabilities": ["processing"]}, "routing_strategy": "power_of_two"},
    ],
)
async def test_a_routed_request_gets_the_same_answer_shape(apps, token, fleet, body):
    mine, reference = await both(
        apps, "/api/v1/route", lean_served=True, json=body, headers=auth(token)
    )

    assert mine.status_code == reference.status_code == 200
    assert mine.json().keys() == reference.json().keys()
    assert mine.json()["requested_strategy"] == reference.json()["requested_strategy"]
    assert len(mine.json()["selected_services"]) == len(reference.json()["selected_services"])
    assert headers_of(mine) == headers_of(reference)


async def test_a_batch_gets_the_same_answer_shape(apps, token, fleet):
    body = {"requests": [{"type": "inference"}, {"capabilities": ["storage"]}, {}]}

    mine, reference = await both(
        apps, "/api/v1/route/batch", lean_served=True, json=body, headers=auth(token)
    )

    assert mine.status_code == reference.status_code == 200
    assert mine.json()["count"] == reference.json()["count"] == 3
    assert [r.keys() for r in mine.json()["results"]] == [
        r.keys() for r in reference.json()["results"]
    ]
    assert mine.json()["results"][1]["selected_services"] == ["store-a"]
    assert headers_of(mine) == headers_of(reference)


@pytest.mark.parametrize(
    "path, content",
    [
        ("/api/v1/route", b'{"data": {"priority": 2}}'),
        ("/api/v1/route", b'{"data": {}, "colour": "red"}'),
        ("/api/v1/route", b'{"data": {}, "top_k": 9}'),
        ("/api/v1/route", b'{"data": {}, "routing_strategy": "fastest"}'),
        ("/api/v1/route", b'{"data": {"capabilities": "storage"}}'),
        ("/api/v1/route", b'{"data": {"capabilities": ["nobody-has-this"]}}'),
        ("/api/v1/route", b"[1, 2]"),
        ("/api/v1/route", b'{"data": {'),
        ("/api/v1/route", b""),
        ("/api/v1/route", b'{"data": {"x": NaN}}'),
        ("/api/v1/route/batch", b'{"requests": []}'),
        ("/api/v1/route/batch", b'{"requests": [{}, {"priority": -1}]}'),
        ("/api/v1/route/batch", b'{"requests": [{}], "top_k": 0}'),
        ("/api/v1/route/batch", b'{"requests": {}}'),
        ("/api/v1/route", b'{"data": {"type": "a\\u0000"}}'),
        ("/api/v1/route/batch", b'{"requests": [{}, {"capabilities": ["\\u0000"]}]}'),
    ],
)
async def test_bad_input_gets_the_same_error(apps, token, fleet, path, content):
    headers = {**auth(token), "Content-Type": "application/json"}

    mine, reference = await both(apps, path, lean_served=True, content=content, headers=headers)

    assert mine.status_code in (400, 503)
    same_error(mine, reference)


async def test_a_body_over_the_limit_gets_the_same_413(apps, token, fleet, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    content = b'{"data": {"data": "' + b"x" * 2000 + b'"}}'
    headers = {**auth(token), "Content-Type": "application/json"}

    mine, reference = await both(
        apps, "/api/v1/route", lean_served=True, content=content, headers=headers
    )

    assert mine.status_code == 413
    same_error(mine, reference)


async def test_too_many_batch_items_get_the_same_error(apps, token, fleet, settings):
    settings.MOE_BATCH_MAX_ITEMS = 3

    mine, reference = await both(
        apps,
        "/api/v1/route/batch",
        lean_served=True,
        json={"requests": [{}] * 4},
        headers=auth(token),
    )

    assert mine.status_code == 400
    assert "requests" in mine.json()["error"]["fields"]
    same_error(mine, reference)


def expired(client_user) -> str:
    token = AccessToken.for_user(client_user)
    token.set_exp(lifetime=-datetime.timedelta(seconds=5))
    return str(token)


@pytest.mark.parametrize("path", ["/api/v1/route", "/api/v1/route/batch"])
@pytest.mark.parametrize(
    "credentials",
    [
        lambda user: {},
        lambda user: {"Authorization": f"Bearer {expired(user)}"},
        lambda user: {"Authorization": f"Bearer {AccessToken.for_user(user)}x"},
        lambda user: {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
    ids=["no token", "expired token", "tampered token", "basic auth"],
)
async def test_requests_without_a_valid_token_are_answered_by_django(
    apps, client_user, fleet, path, credentials
):
    body = {"data": {}} if path.endswith("route") else {"requests": [{}]}

    mine, reference = await both(
        apps, path, lean_served=False, json=body, headers=credentials(client_user)
    )

    assert mine.status_code == 401
    same_error(mine, reference)


async def test_a_body_that_is_not_json_is_answered_by_django(apps, token, fleet):
    headers = {**auth(token), "Content-Type": "text/plain"}

    mine, reference = await both(
        apps, "/api/v1/route", lean_served=False, content=b'{"data": {}}', headers=headers
    )

    assert mine.status_code == 415
    same_error(mine, reference)


async def test_forward_goes_to_the_drf_view_with_its_body(apps, token, fleet):
    body = {"data": {}, "forward": "yes"}

    mine, reference = await both(
        apps, "/api/v1/route", lean_served=False, json=body, headers=auth(token)
    )

    assert mine.status_code == 400
    assert mine.json()["error"]["fields"] == {"forward": ["Must be true or false."]}
    same_error(mine, reference)


def without_seconds(body: dict) -> dict:
    error = body["error"]
    return {**error, "message": re.sub(r"\d+", "N", error["message"])}


async def test_both_count_one_limit_and_throttle_alike(apps, token, fleet, three_per_minute):
    lean, django, _ = apps
    headers = auth(token)
    into_the_minute = __import__("time").time() % 60
    if into_the_minute > 55:  # the three must fall in one window
        await asyncio.sleep(60.5 - into_the_minute)

    first = [
        await lean.post("/api/v1/route", json={"data": {}}, headers=headers),
        await django.post("/api/v1/route", json={"data": {}}, headers=headers),
        # Bad input counts too, as DRF counts a request before its view runs.
        await lean.post("/api/v1/route", json={"data": {"priority": 5}}, headers=headers),
    ]
    mine, reference = await both(
        apps, "/api/v1/route/batch", lean_served=True, json={"requests": [{}]}, headers=headers
    )

    assert [r.status_code for r in first] == [200, 200, 400]
    assert mine.status_code == reference.status_code == 429
    assert without_seconds(mine.json()) == without_seconds(reference.json())
    assert mine.json()["error"]["code"] == "rate_limited"
    assert abs(int(mine.headers["Retry-After"]) - int(reference.headers["Retry-After"])) <= 1
    assert headers_of(mine).keys() == headers_of(reference).keys()
