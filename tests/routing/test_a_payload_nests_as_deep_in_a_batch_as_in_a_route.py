"""``data`` (the payload) may nest MOE_MAX_JSON_DEPTH levels, as the schema says, whether it
comes in ``/route`` (``{"data": {"data": payload}}``) or as a batch item (``{"requests":
[{"data": payload}]}``, one level deeper in the body); one level more is a 400 naming
``body``. Through the DRF views and the ASGI app's own route handler."""

import httpx
import pytest
from asgiref.sync import sync_to_async
from rest_framework_simplejwt.tokens import AccessToken

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = 4


def nested(levels: int):
    value = []
    for _ in range(levels - 1):
        value = [value]
    return value


def bodies(levels: int) -> dict:
    payload = nested(levels)
    return {
        "/api/v1/route": {"data": {"type": "inference", "data": payload}},
        "/api/v1/route/batch": {"requests": [{"type": "inference", "data": payload}]},
    }


@pytest.fixture
def limited(settings):
    settings.MOE_MAX_JSON_DEPTH = LIMIT


@pytest.mark.parametrize("path", ["/api/v1/route", "/api/v1/route/batch"])
def test_the_drf_views_take_the_limit_and_refuse_one_more(fleet, client_api, limited, path):
    fits = client_api.post(path, bodies(LIMIT)[path], format="json")
    deeper = client_api.post(path, bodies(LIMIT + 1)[path], format="json")

    assert fits.status_code == 200, fits.content
    assert deeper.status_code == 400
    assert "body" in deeper.json()["error"]["fields"]


@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/api/v1/route", "/api/v1/route/batch"])
async def test_the_lean_handler_takes_the_limit_and_refuses_one_more(
    fleet, client_user, limited, path
):
    from moe_project.asgi import application

    token = await sync_to_async(lambda: str(AccessToken.for_user(client_user)))()
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="http://localhost"
    ) as lean:
        fits = await lean.post(path, json=bodies(LIMIT)[path], headers=headers)
        deeper = await lean.post(path, json=bodies(LIMIT + 1)[path], headers=headers)

    assert fits.status_code == 200, fits.content
    assert deeper.status_code == 400
    assert "body" in deeper.json()["error"]["fields"]
