"""Per-client rate limits: counted in the shared cache; over the limit is a 429 error JSON."""

import pytest

pytestmark = pytest.mark.django_db


def test_a_client_over_its_limit_gets_429_and_others_do_not(
    three_per_minute, client_api, operator_api, fleet
):
    statuses = [
        client_api.post("/api/v1/route", {"data": {}}, format="json").status_code for _ in range(4)
    ]

    assert statuses == [200, 200, 200, 429]
    limited = client_api.post("/api/v1/route", {"data": {}}, format="json")
    assert limited.json()["error"]["code"] == "rate_limited"
    assert int(limited["Retry-After"]) >= 0
    assert operator_api.post("/api/v1/route", {"data": {}}, format="json").status_code == 200
