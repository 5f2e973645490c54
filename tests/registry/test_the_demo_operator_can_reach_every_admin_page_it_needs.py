"""The demo operator logs into admin and finds everything an operator runs the router with."""

from io import StringIO

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management import call_command

from registry.constants import OPERATOR_PERMISSIONS

pytestmark = pytest.mark.django_db

# What the admin index must list for an operator, and where each changelist is.
OPERATOR_PAGES = {
    "Services": "/admin/registry/service/",
    "Capabilities": "/admin/registry/capability/",
    "Strategy overrides": "/admin/routing/strategyoverride/",
    "Routing decisions": "/admin/routing/routingdecision/",
    "Gate models": "/admin/routing/gatemodel/",
    "Periodic tasks": "/admin/django_celery_beat/periodictask/",
    "Intervals": "/admin/django_celery_beat/intervalschedule/",
    "Crontabs": "/admin/django_celery_beat/crontabschedule/",
}


@pytest.fixture
def demo_operator_client(client, monkeypatch):
    monkeypatch.delenv("MOE_DEMO_PASSWORD", raising=False)
    call_command("seed_demo_fleet", stdout=StringIO())
    assert client.login(username="operator", password="moe-operator-demo")
    return client


def test_the_admin_index_lists_every_operator_page(demo_operator_client):
    index = demo_operator_client.get("/admin/").content.decode()

    for name, url in OPERATOR_PAGES.items():
        assert name in index, name
        assert f'href="{url}"' in index, url


@pytest.mark.parametrize("url", OPERATOR_PAGES.values())
def test_the_demo_operator_can_open_each_changelist(demo_operator_client, url):
    assert demo_operator_client.get(url).status_code == 200


def test_routing_history_is_view_only_and_gate_versions_can_be_activated(demo_operator_client):
    from routing.core.gate import Gate, gate_to_bytes
    from routing.models import GateModel

    old = GateModel.objects.create(version=1, weights=gate_to_bytes(Gate()), active=True)
    new = GateModel.objects.create(version=2, weights=old.weights)

    assert demo_operator_client.get("/admin/routing/routingdecision/add/").status_code == 403
    gate_list = demo_operator_client.get("/admin/routing/gatemodel/").content.decode()
    assert 'value="activate"' in gate_list
    assert demo_operator_client.get("/admin/routing/gatemodel/add/").status_code == 403

    demo_operator_client.post(
        "/admin/routing/gatemodel/", {"action": "activate", "_selected_action": [new.pk]}
    )
    new.refresh_from_db()
    assert new.active


def test_the_operators_group_holds_exactly_the_operator_permissions():
    group = Group.objects.get(name=settings.MOE_OPERATOR_GROUP)
    held = {
        f"{app}.{codename}"
        for app, codename in group.permissions.values_list("content_type__app_label", "codename")
    }
    assert held == set(OPERATOR_PERMISSIONS)


def test_the_header_names_the_product_and_links_to_the_dashboard_and_api_docs(
    demo_operator_client,
):
    page = demo_operator_client.get("/admin/").content.decode()

    assert "moe-router" in page.split("<title>", 1)[1].split("</title>", 1)[0]
    assert "moe-router operations" in page
    assert 'href="/dashboard/"' in page
    assert 'href="/api/docs/"' in page
