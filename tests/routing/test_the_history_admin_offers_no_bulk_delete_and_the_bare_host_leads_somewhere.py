"""Routing history is pruned by the prune_history job, not deleted in bulk from admin: "select
all" then delete would load and list every matching row on its confirmation page (millions)
and delete them in one transaction. A superuser may still delete one row. And the bare host
leads an operator to the dashboard instead of a JSON 404."""

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from routing.models import RoutingDecision

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(client):
    user = get_user_model().objects.create_superuser("root-op", "root@example.com", "pw-93812")
    client.force_login(user)
    return client


def test_the_history_list_has_no_bulk_delete(superuser_client):
    RoutingDecision.objects.create(
        request_id="r-1", request_type="inference", decided_at=timezone.now()
    )

    page = superuser_client.get("/admin/routing/routingdecision/")

    assert page.status_code == 200
    assert "delete_selected" not in page.content.decode()
    refused = superuser_client.post(
        "/admin/routing/routingdecision/",
        {"action": "delete_selected", "_selected_action": ["r-1"], "select_across": "1"},
    )
    assert refused.status_code in (200, 302)
    assert RoutingDecision.objects.filter(request_id="r-1").exists()


def test_a_superuser_may_still_delete_one_row(superuser_client):
    row = RoutingDecision.objects.create(
        request_id="r-2", request_type="inference", decided_at=timezone.now()
    )

    page = superuser_client.post(
        f"/admin/routing/routingdecision/{row.pk}/delete/", {"post": "yes"}
    )

    assert page.status_code == 302
    assert not RoutingDecision.objects.filter(pk=row.pk).exists()


def test_the_bare_host_leads_to_the_dashboard(client):
    answer = client.get("/")

    assert answer.status_code == 302
    assert answer["Location"] == "/dashboard/"
