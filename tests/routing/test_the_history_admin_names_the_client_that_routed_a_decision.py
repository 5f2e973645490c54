"""A decision's page in admin names the client that routed it (history stores the user's id,
which the outcome check compares), not a bare number."""

import pytest
from django.utils import timezone

from routing.models import RoutingDecision

pytestmark = pytest.mark.django_db


def decision(request_id: str, client: str) -> RoutingDecision:
    return RoutingDecision.objects.create(
        request_id=request_id,
        requested_strategy="semantic",
        strategy="semantic",
        primary_service="svc-a",
        decided_at=timezone.now(),
        client=client,
    )


def client_field(admin_client, row: RoutingDecision) -> str:
    page = admin_client.get(f"/admin/routing/routingdecision/{row.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    start = html.index('class="form-row field-client_user"')
    return html[start : html.index('class="form-row', start + 1)]


def test_the_client_is_shown_by_its_username(admin_client, django_user_model):
    alice = django_user_model.objects.create_user("alice", password="alice-pass-1")

    field = client_field(admin_client, decision("r-1", str(alice.pk)))

    assert f"alice (user {alice.pk})" in field


def test_a_deleted_client_and_an_in_process_route_say_so(admin_client):
    assert "user 987654 (no longer exists)" in client_field(admin_client, decision("r-2", "987654"))
    assert "none (routed in-process)" in client_field(admin_client, decision("r-3", ""))


def test_the_page_shows_the_client_once(admin_client, django_user_model):
    bob = django_user_model.objects.create_user("bob", password="bob-pass-1")
    page = admin_client.get(
        f"/admin/routing/routingdecision/{decision('r-4', str(bob.pk)).pk}/change/"
    ).content.decode()

    assert page.count("field-client_user") == 1
    assert 'field-client"' not in page and "field-client " not in page
