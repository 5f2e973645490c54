"""An override row naming a strategy this version does not know (written by SQL, or by an
older or newer version) is skipped with a warning: routing goes on as if it were not there."""

import logging

import pytest

from routing.models import StrategyOverride
from routing.overrides import ActiveOverride, resolve_override, usable
from routing.runtime import get_router

pytestmark = pytest.mark.django_db


def _bogus(**fields):
    # bulk_create: no validation, as a row written by SQL would be
    (row,) = StrategyOverride.objects.bulk_create([StrategyOverride(strategy="bogus", **fields)])
    get_router().mark_stale()
    return row


def test_a_route_ignores_an_unknown_global_override(client_api, fleet, caplog):
    row = _bogus(scope="global")

    with caplog.at_level(logging.WARNING, logger="routing.overrides"):
        response = client_api.post(
            "/api/v1/route", {"data": {}, "routing_strategy": "power_of_two"}, format="json"
        )

    assert response.status_code == 200, response.content
    assert response.json()["routing_strategy"] == "power_of_two"
    assert "override_id" not in response.json()
    assert f"override {row.pk}" in caplog.text
    assert "'bogus'" in caplog.text


def test_a_batch_ignores_an_unknown_type_scoped_override(client_api, fleet):
    _bogus(scope="request_type", request_type="inference")

    batch = client_api.post(
        "/api/v1/route/batch",
        {"requests": [{"type": "inference"}, {}], "routing_strategy": "semantic"},
        format="json",
    )

    assert batch.status_code == 200, batch.content
    assert {r["routing_strategy"] for r in batch.json()["results"]} == {"semantic"}


def test_a_valid_global_override_still_applies_beneath_an_unknown_typed_one():
    rows = [
        ActiveOverride(2, "bogus", "request_type", "etl", None, None),
        ActiveOverride(1, "semantic", "global", "", None, None),
    ]

    assert resolve_override(usable(rows), "etl", now=0.0).id == 1
