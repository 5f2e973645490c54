"""A routed request touches no database: the snapshot, overrides and gate are cached."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

pytestmark = pytest.mark.django_db


def test_routing_runs_no_query_once_the_snapshot_is_warm(client_api, fleet, settings):
    settings.MOE_REGISTRY_POLL_SECONDS = 3600  # no periodic version poll during the test
    client_api.post("/api/v1/route", {"data": {}}, format="json")  # warms the snapshot

    with CaptureQueriesContext(connection) as single:
        for strategy in ("adaptive", "switch_transformer", "consistent_hash", "power_of_two"):
            response = client_api.post(
                "/api/v1/route", {"data": {}, "routing_strategy": strategy}, format="json"
            )
            assert response.status_code == 200
    with CaptureQueriesContext(connection) as batch:
        response = client_api.post("/api/v1/route/batch", {"requests": [{}] * 100}, format="json")
        assert response.status_code == 200

    assert [q["sql"] for q in single.captured_queries] == []
    assert [q["sql"] for q in batch.captured_queries] == []


def test_a_registry_change_is_seen_by_the_next_request(
    client_api, fleet, settings, django_capture_on_commit_callbacks
):
    from registry.services import set_status

    settings.MOE_REGISTRY_POLL_SECONDS = 3600
    client_api.post("/api/v1/route", {"data": {}}, format="json")

    with django_capture_on_commit_callbacks(execute=True):
        set_status(["inf-a", "inf-b", "ana-a"], "disabled")  # this process: invalidated at once

    body = client_api.post("/api/v1/route", {"data": {}}, format="json").json()
    assert body["selected_services"] == ["store-a"]


@pytest.mark.django_db(transaction=True)
def test_a_cold_worker_never_answers_from_an_unloaded_fleet(fleet):
    # given: a new router and many threads asking for the snapshot at once
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection as conn

    from routing.runtime import get_router

    router = get_router()

    def size(_):
        try:
            return len(router.snapshot())
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        sizes = list(pool.map(size, range(32)))

    assert sizes == [len(fleet)] * 32
