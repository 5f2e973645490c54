"""seed_demo_fleet registers a realistic fleet and a demo operator; a second run changes nothing."""

from io import StringIO

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command

from registry.models import Capability, Service
from registry.services import current_registry_version

pytestmark = pytest.mark.django_db


def seed() -> str:
    out = StringIO()
    call_command("seed_demo_fleet", stdout=out)
    return out.getvalue()


def registry_state() -> tuple:
    services = list(Service.objects.values_list("service_id", "updated_at").order_by("pk"))
    capabilities = list(Capability.objects.values_list("name", "updated_at").order_by("pk"))
    return services, capabilities, current_registry_version()


def test_it_registers_at_least_eight_services_across_every_type(monkeypatch):
    monkeypatch.delenv("MOE_DEMO_PASSWORD", raising=False)
    seed()

    assert Service.objects.count() >= 8
    assert set(Service.objects.values_list("service_type", flat=True)) >= {
        "inference",
        "storage",
        "consensus",
        "analysis",
        "neuromorphic",
        "learning",
        "custom",
    }
    for service in Service.objects.prefetch_related("capabilities"):
        assert service.capabilities.exists(), service
        assert service.max_capacity >= 1
        assert service.endpoint.startswith("http://127.0.0.1:81")


def test_running_it_twice_changes_nothing(monkeypatch):
    monkeypatch.delenv("MOE_DEMO_PASSWORD", raising=False)
    # given
    seed()
    state = registry_state()
    user = get_user_model().objects.get(username="operator")
    # when
    output = seed()
    # then
    assert registry_state() == state
    again = get_user_model().objects.get(username="operator")
    assert (again.password, again.last_login) == (user.password, user.last_login)
    assert "already registered" in output


def test_it_creates_a_demo_operator_who_can_use_admin_and_get_a_token(client, monkeypatch):
    monkeypatch.delenv("MOE_DEMO_PASSWORD", raising=False)
    output = seed()

    user = get_user_model().objects.get(username="operator")
    assert user.is_staff and user.is_active
    assert user.groups.filter(name=settings.MOE_OPERATOR_GROUP).exists()
    assert user.has_perm("registry.operate_router")
    assert "/api/v1/auth/token/" in output
    assert '{"username": "operator", "password": "moe-operator-demo"}' in output

    response = client.post(
        "/api/v1/auth/token/",
        {"username": "operator", "password": "moe-operator-demo"},
        content_type="application/json",
    )
    assert response.status_code == 200
    assert "access" in response.json()


def test_the_password_comes_from_the_environment_and_is_not_printed(monkeypatch):
    # given
    monkeypatch.setenv("MOE_DEMO_PASSWORD", "a-better-secret-42")
    # when
    output = seed()
    # then
    user = get_user_model().objects.get(username="operator")
    assert user.check_password("a-better-secret-42")
    assert "a-better-secret-42" not in output
    assert "$MOE_DEMO_PASSWORD" in output


def test_a_changed_password_updates_the_user_but_not_the_fleet(monkeypatch):
    monkeypatch.delenv("MOE_DEMO_PASSWORD", raising=False)
    seed()
    version = current_registry_version()

    monkeypatch.setenv("MOE_DEMO_PASSWORD", "rotated-pass-99")
    seed()

    assert get_user_model().objects.get(username="operator").check_password("rotated-pass-99")
    assert current_registry_version() == version


def test_it_repairs_a_demo_operator_that_lost_its_access(monkeypatch):
    monkeypatch.delenv("MOE_DEMO_PASSWORD", raising=False)
    seed()
    user = get_user_model().objects.get(username="operator")
    user.is_staff = False
    user.save()
    user.groups.clear()

    seed()

    user.refresh_from_db()
    assert user.is_staff
    assert user.groups.filter(name=settings.MOE_OPERATOR_GROUP).exists()
