"""Admin for routing: history read-only with filters, overrides editable, gate versions."""

import pytest
from django.utils import timezone

from registry.services import current_registry_version
from routing.history import flush_history
from routing.models import GateModel, RoutingDecision, StrategyOverride

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(client_api, fleet):
    for strategy in ("semantic", "power_of_two", "semantic"):
        client_api.post("/api/v1/route", {"data": {}, "routing_strategy": strategy}, format="json")
    flush_history()
    return list(RoutingDecision.objects.all())


def test_history_lists_with_filters_by_strategy_service_and_outcome(admin_client, history):
    page = admin_client.get("/admin/routing/routingdecision/")
    assert page.status_code == 200
    for row in history:
        assert row.request_id in page.content.decode()

    semantic = admin_client.get("/admin/routing/routingdecision/?strategy=semantic")
    assert semantic.content.decode().count("field-request_id") == 2

    service = history[0].primary_service
    by_service = admin_client.get(f"/admin/routing/routingdecision/?service={service}")
    assert history[0].request_id in by_service.content.decode()

    unreported = admin_client.get("/admin/routing/routingdecision/?outcome=none")
    assert unreported.content.decode().count("field-request_id") == 3
    assert admin_client.get("/admin/routing/routingdecision/?outcome=success").status_code == 200


def test_history_is_read_only(admin_client, history):
    row = history[0]

    assert admin_client.get("/admin/routing/routingdecision/add/").status_code == 403
    response = admin_client.post(
        f"/admin/routing/routingdecision/{row.pk}/change/", {"strategy": "top_k"}
    )
    assert response.status_code == 403
    row.refresh_from_db()
    assert row.strategy != "top_k"


def test_an_override_added_in_admin_bumps_the_version(admin_client, db):
    before = current_registry_version()

    response = admin_client.post(
        "/admin/routing/strategyoverride/add/",
        {"strategy": "semantic", "scope": "global", "request_type": "", "reason": "test"},
    )

    assert response.status_code == 302
    assert StrategyOverride.objects.get().strategy == "semantic"
    assert current_registry_version() > before


def test_end_now_action_ends_an_override(admin_client, db):
    override = StrategyOverride.objects.create(strategy="semantic", scope="global")

    admin_client.post(
        "/admin/routing/strategyoverride/",
        {"action": "end_now", "_selected_action": [override.pk]},
    )

    override.refresh_from_db()
    assert override.ended_at is not None
    assert not override.is_active()
    page = admin_client.get("/admin/routing/strategyoverride/").content.decode()
    assert "expires_at" in page or "Expires at" in page


def test_gate_versions_list_and_activate(admin_client, db):
    from routing.core.gate import Gate, gate_to_bytes

    blob = gate_to_bytes(Gate())
    old = GateModel.objects.create(version=1, weights=blob, active=True, trained_at=timezone.now())
    new = GateModel.objects.create(
        version=2, weights=blob, validation_metrics={"loss": 0.4}, trained_at=timezone.now()
    )

    page = admin_client.get("/admin/routing/gatemodel/")
    assert page.status_code == 200
    admin_client.post(
        "/admin/routing/gatemodel/", {"action": "activate", "_selected_action": [new.pk]}
    )

    old.refresh_from_db()
    new.refresh_from_db()
    assert (old.active, new.active) == (False, True)
