"""A worker that starts while the database is down has no fleet: a route is a 503 saying the
registry cannot be read (not "fleet is empty", which would send an operator looking for a
missing fleet), through the DRF view and the ASGI app's own route handler alike; once the
database answers, the same worker routes. A worker that loaded the fleet before keeps routing
on it. The database's failure is the one thing simulated here (the registry query raises
``OperationalError``, as psycopg and sqlite3 do when the server is gone)."""

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.db import OperationalError
from rest_framework_simplejwt.tokens import AccessToken

from routing.runtime import get_router

pytestmark = pytest.mark.django_db(transaction=True)

ROUTE = {"data": {"type": "inference"}}


@pytest.fixture
def database_down(monkeypatch):
    import registry.services

    def unreachable():
        raise OperationalError("connection refused")

    monkeypatch.setattr(registry.services, "current_registry_version", unreachable)
    return monkeypatch


def test_a_cold_worker_says_the_registry_is_unavailable_then_routes(
    fleet, client_api, database_down, settings
):
    settings.MOE_REGISTRY_POLL_SECONDS = 0.0

    down = client_api.post("/api/v1/route", ROUTE, format="json")
    batch = client_api.post("/api/v1/route/batch", {"requests": [ROUTE["data"]]}, format="json")

    assert down.status_code == batch.status_code == 503
    assert down.json()["error"]["code"] == batch.json()["error"]["code"] == "registry_unavailable"
    assert "database" in down.json()["error"]["message"]
    database_down.undo()
    up = client_api.post("/api/v1/route", ROUTE, format="json")
    assert up.status_code == 200, up.content
    assert up.json()["selected_services"]


def test_a_worker_that_loaded_the_fleet_keeps_routing_on_it(
    fleet, client_api, monkeypatch, settings
):
    import registry.services

    settings.MOE_REGISTRY_POLL_SECONDS = 0.0
    assert client_api.post("/api/v1/route", ROUTE, format="json").status_code == 200

    def unreachable():
        raise OperationalError("connection refused")

    monkeypatch.setattr(registry.services, "current_registry_version", unreachable)

    again = client_api.post("/api/v1/route", ROUTE, format="json")
    assert again.status_code == 200, again.content


@pytest.mark.asyncio
async def test_the_lean_handler_answers_the_same_json(fleet, client_user, database_down, settings):
    from moe_project.asgi import application

    settings.MOE_REGISTRY_POLL_SECONDS = 0.0
    token = await sync_to_async(lambda: str(AccessToken.for_user(client_user)))()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="http://localhost"
    ) as lean:
        down = await lean.post(
            "/api/v1/route", json=ROUTE, headers={"Authorization": f"Bearer {token}"}
        )

    assert down.status_code == 503
    assert down.headers["content-type"].startswith("application/json")
    assert down.json()["error"]["code"] == "registry_unavailable"
    assert get_router().current_snapshot() is not None


@pytest.mark.asyncio
async def test_a_failure_before_routing_is_still_a_json_answer(fleet, client_user, monkeypatch):
    # Whatever fails while the lean handler gets its router ready (here: a settings error the
    # router's construction raises) answers the API's JSON 500, not the server's plain text.
    from moe_project.asgi import application
    from routing.api import fast

    def broken():
        raise ValueError("need 1 <= default_top_k <= max_top_k")

    monkeypatch.setattr(fast, "get_router", broken)
    token = await sync_to_async(lambda: str(AccessToken.for_user(client_user)))()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application, raise_app_exceptions=False),
        base_url="http://localhost",
    ) as lean:
        answer = await lean.post(
            "/api/v1/route", json=ROUTE, headers={"Authorization": f"Bearer {token}"}
        )

    assert answer.status_code == 500
    assert answer.json()["error"]["code"] == "server_error"


def test_the_proxy_says_so_too(fleet, client_api, database_down, settings):
    settings.MOE_REGISTRY_POLL_SECONDS = 0.0

    answer = client_api.get("/api/v1/proxy/items")

    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "registry_unavailable"


def test_an_endpoint_that_reads_the_database_while_it_is_down_is_a_503(fleet, client_api):
    # Every query fails as it does when the server is gone (Django's execute_wrapper hook).
    from django.db import connection

    def gone(execute, sql, params, many, context):
        raise OperationalError("server closed the connection unexpectedly")

    with connection.execute_wrapper(gone):
        answer = client_api.get("/api/v1/services")
        versions = client_api.get("/api/v1/gate/versions")

    for response in (answer, versions):
        assert response.status_code == 503, response.content
        assert response.json()["error"]["code"] == "database_unavailable"
        assert int(response["Retry-After"]) > 0
    assert client_api.get("/api/v1/services").status_code == 200
