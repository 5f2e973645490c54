"""Bad routing inputs are a 400 naming the header or parameter; no token is a 401."""

import pytest
from django.test import AsyncClient

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ({"X-Moe-Complexity": "high"}, "X-Moe-Complexity"),
        ({"X-Moe-Priority": "1.5"}, "X-Moe-Priority"),
        ({"X-Moe-Strategy": "fastest"}, "X-Moe-Strategy"),
        ({"X-Moe-Type": "t" * 65}, "X-Moe-Type"),
        ({"X-Moe-Key": "k" * 257}, "X-Moe-Key"),
        ({"X-Moe-Top-K": "0"}, "X-Moe-Top-K"),
        ({"X-Moe-Deadline-Ms": "soon"}, "X-Moe-Deadline-Ms"),
        ({"X-Moe-Capabilities": ",".join(f"c{i}" for i in range(40))}, "X-Moe-Capabilities"),
    ],
)
async def test_a_bad_header_is_a_400_naming_it(proxy, afleet, headers, field):
    await afleet(1)

    response = await proxy.get("/api/v1/proxy/x", headers=headers)

    assert response.status_code == 400
    body = response.json()
    assert body["error"]["code"] == "validation_error"
    assert list(body["error"]["fields"]) == [field]


async def test_a_bad_query_parameter_is_a_400_naming_it(proxy, afleet):
    await afleet(1)

    response = await proxy.get("/api/v1/proxy/x?moe_complexity=2")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["moe_complexity"]


async def test_without_a_token_it_is_a_401(afleet):
    (backend,) = await afleet(1)

    response = await AsyncClient().get("/api/v1/proxy/x")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert backend.hits == 0


async def test_a_forged_token_is_a_401_saying_it_is_not_valid(afleet):
    (backend,) = await afleet(1)

    # Per call: AsyncClient(headers=...) would send it as "http-authorization" (not a token).
    response = await AsyncClient().get(
        "/api/v1/proxy/x", headers={"Authorization": "Bearer not.a.token"}
    )

    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Token is invalid"
    assert backend.hits == 0
