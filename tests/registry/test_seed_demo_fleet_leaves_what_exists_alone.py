"""seed_demo_fleet run again after the fleet has lived a while: nothing existing changes, and
the URLs it prints follow the port the server is served on."""

from io import StringIO

import pytest
from django.core.management import call_command

from registry.models import Service
from registry.services import current_registry_version

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def demo_defaults(monkeypatch):
    monkeypatch.delenv("MOE_DEMO_PASSWORD", raising=False)
    monkeypatch.delenv("MOE_PORT", raising=False)


def seed(*args) -> str:
    out = StringIO()
    call_command("seed_demo_fleet", *args, stdout=out)
    return out.getvalue()


def weights() -> dict[str, float]:
    return dict(Service.objects.values_list("service_id", "weight"))


def test_a_rerun_keeps_rebalanced_and_edited_services_and_the_registry_version():
    # given: the rebalance job and an operator changed demo services the seed gave weights to
    seed()
    Service.objects.filter(service_id="llm-code").update(weight=2.7375)
    Service.objects.filter(service_id="object-archive").update(weight=1.25, max_capacity=300)
    before = (weights(), current_registry_version())
    # when
    output = seed()
    # then
    assert (weights(), current_registry_version()) == before
    assert Service.objects.get(service_id="object-archive").max_capacity == 300
    assert "already registered" in output


def test_a_rerun_brings_back_a_demo_service_that_was_removed():
    seed()
    Service.objects.filter(service_id="llm-code").update(weight=2.7375)
    Service.objects.get(service_id="vector-store").delete()

    output = seed()

    assert Service.objects.filter(service_id="vector-store").exists()
    assert weights()["llm-code"] == 2.7375
    assert "1 created" in output


def test_the_printed_urls_follow_moe_port_unless_a_base_url_is_given(monkeypatch):
    monkeypatch.setenv("MOE_PORT", "9123")

    output = seed()

    assert "http://127.0.0.1:9123/api/v1/auth/token/" in output
    assert "http://127.0.0.1:9123/admin/" in output
    assert ":8005" not in output
    assert "http://10.0.0.7:8080/admin/" in seed("--base-url", "http://10.0.0.7:8080/")
