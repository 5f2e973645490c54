"""Bulk actions drain, enable and disable services and bump the registry version."""

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, Permission

from registry.models import Service
from registry.services import current_registry_version

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/registry/service/"


@pytest.fixture
def fleet():
    return [
        Service.objects.create(
            service_id=sid,
            service_type="inference",
            endpoint="http://127.0.0.1:8101",
            max_capacity=5,
            status=status,
        )
        for sid, status in (("a", "active"), ("b", "active"), ("c", "disabled"))
    ]


def run_action(client, action: str, services):
    return client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [s.pk for s in services], "index": 0},
        follow=True,
    )


def statuses() -> dict:
    return dict(Service.objects.values_list("service_id", "status"))


@pytest.mark.parametrize(
    "action, expected",
    [
        ("drain_services", {"a": "draining", "b": "draining", "c": "disabled"}),
        ("disable_services", {"a": "disabled", "b": "disabled", "c": "disabled"}),
    ],
)
def test_an_action_changes_the_selected_services_and_bumps_the_version(
    admin_client, fleet, action, expected
):
    # given
    before = current_registry_version()
    # when
    response = run_action(admin_client, action, fleet[:2])
    # then
    assert response.status_code == 200
    assert statuses() == expected
    assert current_registry_version() > before
    assert "2 services" in response.content.decode()


def test_enable_brings_disabled_services_back(admin_client, fleet):
    before = current_registry_version()
    run_action(admin_client, "enable_services", fleet)
    assert set(statuses().values()) == {"active"}
    assert current_registry_version() == before + 1


def test_an_action_that_changes_nothing_leaves_the_version_alone(admin_client, fleet):
    before = current_registry_version()
    response = run_action(admin_client, "enable_services", fleet[:2])
    assert current_registry_version() == before
    assert "0 services" in response.content.decode()


def test_the_actions_work_on_a_filtered_and_searched_list(admin_client, fleet):
    # distinct() from searching a many-to-many must not break the bulk update
    response = admin_client.post(
        f"{CHANGELIST}?q=a&status__exact=active",
        {"action": "drain_services", "_selected_action": [fleet[0].pk], "index": 0},
        follow=True,
    )
    assert response.status_code == 200
    assert statuses()["a"] == "draining"


def test_a_user_who_is_not_an_operator_gets_no_action(client, django_user_model, fleet):
    # given: may view and change services, but is neither staff nor holds operate_router
    user = django_user_model.objects.create_user("viewer", password="x")
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_service", "change_service"])
    )
    client.force_login(user)
    # when
    response = client.get(CHANGELIST)
    run_action(client, "drain_services", fleet[:1])
    # then: the admin sends them to its login
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert statuses()["a"] == "active"


@pytest.mark.parametrize("persona", ["group", "staff"])
def test_an_operator_gets_the_actions(client, django_user_model, fleet, persona):
    # Staff are operators too (registry.permissions.is_operator), without the group.
    user = django_user_model.objects.create_user("ops", password="x", is_staff=persona == "staff")
    if persona == "group":
        user.groups.add(Group.objects.get(name=settings.MOE_OPERATOR_GROUP))
    client.force_login(user)
    actions = dict(client.get(CHANGELIST).context["action_form"].fields["action"].choices)
    assert {"drain_services", "enable_services", "disable_services"} <= set(actions)
    run_action(client, "drain_services", fleet[:1])
    assert statuses()["a"] == "draining"
